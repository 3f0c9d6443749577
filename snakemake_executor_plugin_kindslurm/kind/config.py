"""The Kind cluster configuration: generate, load, validate, merge, render.

The runner builds one config per job from three layers, later ones winning:

1. the generated default: `kind: Cluster`, `apiVersion: kind.x-k8s.io/v1alpha4`
   and one control-plane node;
2. the user's config file (`RunnerSpec.kind_config`), if any;
3. the rule's override file (`RunnerSpec.rule_kind_config`), if any.

Merge rules (merge_kind_configs):

- mappings merge recursively, key by key (`featureGates`, `networking`,
  `runtimeConfig`, ...): a rule file can add one feature gate;
- every other value, lists included, replaces the earlier one. In particular
  a `nodes` list replaces the whole node list before it (write every node you
  want, control-plane included);
- `name` is dropped: the runner names the cluster (`kind create --name`).

After merging, every node gets the job's working directory mounted at /app
(an `extraMounts` entry appended to its list), and relative `hostPath`s are
made absolute against the working directory (kind would resolve them
against its own working directory, which is the same place). A user mount
to containerPath /app is an error: /app belongs to the runner.

Each file is validated on its own before merging, so that an error names the
file it is in: readable, valid YAML (with the line), a mapping, `kind` and
`apiVersion` (optional in a file, but if present they must be `Cluster` and
`kind.x-k8s.io/v1alpha4`), node roles (`control-plane`, `worker`), at least
one control-plane node when `nodes` is given, and the shapes of `labels`,
`extraMounts`, `extraPortMappings` and `featureGates`. Unknown keys are left
for kind to judge: newer kind releases add fields.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

KIND_API_VERSION = "kind.x-k8s.io/v1alpha4"
KIND_KIND = "Cluster"
APP_CONTAINER_PATH = "/app"
NODE_ROLES = ("control-plane", "worker")
MOUNT_PROPAGATIONS = ("None", "HostToContainer", "Bidirectional")
PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")

ConfigDict = dict[str, Any]
Fail = Callable[[str], NoReturn]


class KindConfigError(Exception):
    """A kind config file (or the merged result) is unusable; says which file and why."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"invalid kind config {source}: {reason}")


def build_default_config() -> ConfigDict:
    """The generated layer: one control-plane node (the /app mount comes last)."""
    return {
        "kind": KIND_KIND,
        "apiVersion": KIND_API_VERSION,
        "nodes": [{"role": "control-plane"}],
    }


def parse_kind_config(text: str, source: str) -> ConfigDict:
    """Parse and validate one config file's text; source names it in errors."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(p for p in (err.context, err.problem) if p) or str(err)
        raise KindConfigError(source, f"YAML error at {where}{problem}") from err
    except yaml.YAMLError as err:
        raise KindConfigError(source, f"YAML error: {err}") from err
    if data is None:
        raise KindConfigError(source, "the file is empty (expected a kind Cluster mapping)")
    if not isinstance(data, dict):
        raise KindConfigError(
            source, f"expected a mapping at the top level, got {type(data).__name__}"
        )
    validate_kind_config(data, source)
    return data


def load_kind_config(path: str | os.PathLike[str]) -> ConfigDict:
    """Read, parse and validate one config file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise KindConfigError(source, "file not found") from err
    except IsADirectoryError as err:
        raise KindConfigError(source, "is a directory, not a file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise KindConfigError(source, f"cannot read it: {err}") from err
    return parse_kind_config(text, source)


def validate_kind_config(data: Mapping[str, Any], source: str) -> None:
    """Raise KindConfigError for the first problem found in one config layer."""

    def fail(reason: str) -> NoReturn:
        raise KindConfigError(source, reason)

    kind = data.get("kind")
    if kind is not None and kind != KIND_KIND:
        fail(f"kind must be {KIND_KIND!r}, got {kind!r}")
    api = data.get("apiVersion")
    if api is not None and api != KIND_API_VERSION:
        fail(f"apiVersion must be {KIND_API_VERSION!r}, got {api!r}")
    gates = data.get("featureGates")
    if gates is not None:
        if not isinstance(gates, dict):
            fail("featureGates must be a mapping of gate name to true/false")
        for gate, value in gates.items():
            if not isinstance(value, bool):
                fail(f"featureGates.{gate} must be true or false, got {value!r}")
    for key in ("networking", "runtimeConfig"):
        if key in data and not isinstance(data[key], dict):
            fail(f"{key} must be a mapping")
    if "nodes" not in data:
        return
    nodes = data["nodes"]
    if not isinstance(nodes, list) or not nodes:
        fail("nodes must be a non-empty list of nodes")
    control_planes = 0
    for index, node in enumerate(nodes):
        where = f"nodes[{index}]"
        if not isinstance(node, dict):
            fail(f"{where} must be a mapping (role, extraMounts, ...)")
        role = node.get("role", "control-plane")
        if role not in NODE_ROLES:
            fail(f"{where}.role: unknown node role {role!r} (expected one of {NODE_ROLES})")
        control_planes += role == "control-plane"
        _validate_labels(node.get("labels"), f"{where}.labels", fail)
        _validate_mounts(node.get("extraMounts"), f"{where}.extraMounts", fail)
        _validate_ports(node.get("extraPortMappings"), f"{where}.extraPortMappings", fail)
    if control_planes == 0:
        fail("nodes has no control-plane node (add `- role: control-plane`)")


def _validate_labels(labels: Any, where: str, fail: Fail) -> None:
    if labels is None:
        return
    if not isinstance(labels, dict):
        fail(f"{where} must be a mapping of label to string value")
    for key, value in labels.items():
        if not isinstance(value, str):
            fail(f'{where}.{key} must be a string; quote it: {key}: "{value}"')


def _validate_mounts(mounts: Any, where: str, fail: Fail) -> None:
    if mounts is None:
        return
    if not isinstance(mounts, list):
        fail(f"{where} must be a list of {{hostPath, containerPath}} mappings")
    for index, mount in enumerate(mounts):
        at = f"{where}[{index}]"
        if not isinstance(mount, dict):
            fail(f"{at} must be a mapping with hostPath and containerPath")
        for key in ("hostPath", "containerPath"):
            if not isinstance(mount.get(key), str) or not mount[key]:
                fail(f"{at}.{key} is required and must be a non-empty string")
        container_path = mount["containerPath"]
        if not container_path.startswith("/"):
            fail(f"{at}.containerPath must be absolute, got {container_path!r}")
        if os.path.normpath(container_path) == APP_CONTAINER_PATH:
            fail(
                f"{at}: containerPath {APP_CONTAINER_PATH} is reserved for the job's "
                "working directory (mounted by kindslurm); use another path"
            )
        for key in ("readOnly", "selinuxRelabel"):
            if key in mount and not isinstance(mount[key], bool):
                fail(f"{at}.{key} must be true or false")
        propagation = mount.get("propagation")
        if propagation is not None and propagation not in MOUNT_PROPAGATIONS:
            fail(f"{at}.propagation must be one of {MOUNT_PROPAGATIONS}, got {propagation!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_ports(ports: Any, where: str, fail: Fail) -> None:
    if ports is None:
        return
    if not isinstance(ports, list):
        fail(f"{where} must be a list of {{containerPort, hostPort}} mappings")
    for index, port in enumerate(ports):
        at = f"{where}[{index}]"
        if not isinstance(port, dict):
            fail(f"{at} must be a mapping with containerPort (and hostPort)")
        container_port: Any = port.get("containerPort")
        if not _is_int(container_port) or not 1 <= container_port <= 65535:
            fail(f"{at}.containerPort is required and must be 1..65535, got {container_port!r}")
        if "hostPort" in port:
            host_port: Any = port["hostPort"]
            if not _is_int(host_port) or not -1 <= host_port <= 65535:
                fail(f"{at}.hostPort must be -1..65535 (0/unset: random), got {host_port!r}")
        if "listenAddress" in port and not isinstance(port["listenAddress"], str):
            fail(f"{at}.listenAddress must be a string (an IP address)")
        protocol = port.get("protocol")
        if protocol is not None and protocol not in PORT_PROTOCOLS:
            fail(f"{at}.protocol must be one of {PORT_PROTOCOLS}, got {protocol!r}")


def merge_kind_configs(base: Mapping[str, Any], *overlays: Mapping[str, Any]) -> ConfigDict:
    """Merge config layers, later ones winning (see the module docstring). Pure."""
    merged: ConfigDict = copy.deepcopy(dict(base))
    for overlay in overlays:
        merged = _merge(merged, overlay)
    merged.pop("name", None)
    return merged


def _merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> ConfigDict:
    result: ConfigDict = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def apply_app_mount(config: Mapping[str, Any], workdir: str) -> ConfigDict:
    """Mount workdir at /app on every node; make relative hostPaths absolute. Pure.

    workdir must be absolute.
    """
    if not os.path.isabs(workdir):
        raise ValueError(f"workdir must be absolute, got {workdir!r}")
    result: ConfigDict = copy.deepcopy(dict(config))
    result["kind"] = KIND_KIND
    result["apiVersion"] = KIND_API_VERSION
    nodes = result.get("nodes") or [{"role": "control-plane"}]
    for node in nodes:
        mounts = []
        for mount in node.get("extraMounts") or []:
            mount = dict(mount)
            mount["hostPath"] = os.path.normpath(os.path.join(workdir, mount["hostPath"]))
            mounts.append(mount)
        mounts.append({"hostPath": workdir, "containerPath": APP_CONTAINER_PATH})
        node["extraMounts"] = mounts
    result["nodes"] = nodes
    return result


def node_roles(config: Mapping[str, Any]) -> list[str]:
    """The node roles in order (kind defaults a missing role to control-plane)."""
    return [node.get("role", "control-plane") for node in config.get("nodes") or [{}]]


def check_host_paths(config: Mapping[str, Any], source: str) -> None:
    """Every hostPath must exist, or podman fails later with a worse message."""
    for index, node in enumerate(config.get("nodes") or []):
        for mount in node.get("extraMounts") or []:
            if not os.path.exists(mount["hostPath"]):
                raise KindConfigError(
                    source,
                    f"nodes[{index}].extraMounts: hostPath {mount['hostPath']} does not exist "
                    "on this node",
                )


def build_kind_config(
    workdir: str,
    user_config: str | None = None,
    rule_config: str | None = None,
) -> ConfigDict:
    """Load, validate and merge the layers for a job; the result is ready to render."""
    layers = [load_kind_config(path) for path in (user_config, rule_config) if path]
    merged = merge_kind_configs(build_default_config(), *layers)
    config = apply_app_mount(merged, os.path.abspath(workdir))
    sources = " + ".join(p for p in (user_config, rule_config) if p) or "(generated)"
    check_host_paths(config, sources)
    return config


def render_kind_config(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=False)
