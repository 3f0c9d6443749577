"""The Kind config: validation (with the file and reason), merge rules, the /app mount."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from snakemake_executor_plugin_kindslurm.kind.config import (
    APP_CONTAINER_PATH,
    KindConfigError,
    apply_app_mount,
    build_default_config,
    build_kind_config,
    load_kind_config,
    merge_kind_configs,
    node_roles,
    parse_kind_config,
    render_kind_config,
)

DATA = Path(__file__).parent.parent / "data" / "kind"
HEADER = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("a: [1, 2\n", r"YAML error at line 2, column 1", id="yaml-error-with-line"),
        pytest.param("", "the file is empty", id="empty"),
        pytest.param(
            "- role: worker\n", "expected a mapping at the top level, got list", id="list"
        ),
        pytest.param("just text\n", "expected a mapping at the top level, got str", id="scalar"),
        pytest.param("kind: Pod\n", "kind must be 'Cluster', got 'Pod'", id="wrong-kind"),
        pytest.param(
            "apiVersion: kind.x-k8s.io/v1alpha3\n",
            "apiVersion must be 'kind.x-k8s.io/v1alpha4'",
            id="wrong-api-version",
        ),
        pytest.param("nodes: {}\n", "nodes must be a non-empty list", id="nodes-mapping"),
        pytest.param("nodes: []\n", "nodes must be a non-empty list", id="nodes-empty"),
        pytest.param("nodes: [worker]\n", r"nodes\[0\] must be a mapping", id="node-scalar"),
        pytest.param(
            "nodes:\n- role: master\n",
            r"nodes\[0\].role: unknown node role 'master'",
            id="unknown-role",
        ),
        pytest.param(
            "nodes:\n- role: worker\n",
            "no control-plane node",
            id="no-control-plane",
        ),
        pytest.param(
            "nodes:\n- extraMounts: {hostPath: /x, containerPath: /y}\n",
            r"nodes\[0\].extraMounts must be a list",
            id="mounts-not-list",
        ),
        pytest.param(
            "nodes:\n- extraMounts: [{hostPath: /x}]\n",
            r"extraMounts\[0\].containerPath is required",
            id="mount-without-container-path",
        ),
        pytest.param(
            "nodes:\n- extraMounts: [{hostPath: /x, containerPath: rel}]\n",
            "containerPath must be absolute",
            id="mount-relative-container-path",
        ),
        pytest.param(
            "nodes:\n- extraMounts: [{hostPath: /x, containerPath: /app/}]\n",
            "containerPath /app is reserved",
            id="mount-over-app",
        ),
        pytest.param(
            "nodes:\n- extraMounts: [{hostPath: /x, containerPath: /y, readOnly: 'yes'}]\n",
            r"readOnly must be true or false",
            id="mount-readonly-string",
        ),
        pytest.param(
            "nodes:\n- extraMounts: [{hostPath: /x, containerPath: /y, propagation: shared}]\n",
            "propagation must be one of",
            id="mount-bad-propagation",
        ),
        pytest.param(
            "nodes:\n- extraPortMappings: [{hostPort: 80}]\n",
            r"extraPortMappings\[0\].containerPort is required",
            id="port-missing",
        ),
        pytest.param(
            "nodes:\n- extraPortMappings: [{containerPort: 70000}]\n",
            "containerPort is required and must be 1..65535, got 70000",
            id="port-range",
        ),
        pytest.param(
            "nodes:\n- extraPortMappings: [{containerPort: true}]\n",
            "containerPort is required and must be 1..65535, got True",
            id="port-bool",
        ),
        pytest.param(
            "nodes:\n- extraPortMappings: [{containerPort: 80, hostPort: '8080'}]\n",
            "hostPort must be -1..65535",
            id="host-port-string",
        ),
        pytest.param(
            "nodes:\n- extraPortMappings: [{containerPort: 80, protocol: tcp}]\n",
            "protocol must be one of",
            id="protocol-lower-case",
        ),
        pytest.param(
            "nodes:\n- extraPortMappings: 80\n",
            "extraPortMappings must be a list",
            id="ports-not-list",
        ),
        pytest.param(
            "nodes:\n- labels: {ingress-ready: true}\n",
            'labels.ingress-ready must be a string; quote it: ingress-ready: "True"',
            id="label-bool",
        ),
        pytest.param(
            "featureGates: {A: 'on'}\n", "featureGates.A must be true or false", id="gate"
        ),
        pytest.param("featureGates: [A]\n", "featureGates must be a mapping", id="gates-list"),
        pytest.param("networking: 1\n", "networking must be a mapping", id="networking"),
    ],
)
def test_parse_rejects_with_file_and_reason(text: str, reason: str) -> None:
    with pytest.raises(KindConfigError, match=reason) as info:
        parse_kind_config(text, "/cfg/kind.yaml")
    assert str(info.value).startswith("invalid kind config /cfg/kind.yaml: ")
    assert info.value.source == "/cfg/kind.yaml"


def test_header_only_and_unknown_keys_are_accepted() -> None:
    data = parse_kind_config(HEADER + "containerdConfigPatches: ['x']\nnewField: 1\n", "f")
    assert data["newField"] == 1  # kind, not we, judges fields we do not know


def test_recorded_files_load() -> None:
    user = load_kind_config(DATA / "kind-config-user.yaml")
    assert node_roles(user) == ["control-plane", "worker"]
    rule = load_kind_config(DATA / "kind-config-rule.yaml")
    assert rule["featureGates"] == {"SidecarContainers": True}


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        pytest.param("kind-config-bad-yaml.yaml", "YAML error at line 6, column 1", id="yaml"),
        pytest.param("kind-config-bad-role.yaml", r"nodes\[1\].role: unknown", id="role"),
    ],
)
def test_recorded_bad_files_name_the_file(name: str, reason: str) -> None:
    with pytest.raises(KindConfigError, match=reason) as info:
        load_kind_config(DATA / name)
    assert str(DATA / name) in str(info.value)


def test_load_missing_directory_and_undecodable(tmp_path: Path) -> None:
    with pytest.raises(KindConfigError, match="file not found"):
        load_kind_config(tmp_path / "nope.yaml")
    with pytest.raises(KindConfigError, match="is a directory"):
        load_kind_config(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00kind")
    with pytest.raises(KindConfigError, match="cannot read it"):
        load_kind_config(binary)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_load_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(HEADER)
    path.chmod(0)
    with pytest.raises(KindConfigError, match="cannot read it"):
        load_kind_config(path)


# ------------------------------------------------------------------ merge ---


def test_mappings_merge_recursively_and_later_wins() -> None:
    merged = merge_kind_configs(
        build_default_config(),
        {"featureGates": {"A": True, "B": True}, "networking": {"podSubnet": "10.1.0.0/16"}},
        {"featureGates": {"B": False}, "networking": {"serviceSubnet": "10.2.0.0/16"}},
    )
    assert merged["featureGates"] == {"A": True, "B": False}
    assert merged["networking"] == {"podSubnet": "10.1.0.0/16", "serviceSubnet": "10.2.0.0/16"}


def test_nodes_and_other_lists_replace() -> None:
    user = {"nodes": [{"role": "control-plane"}, {"role": "worker"}], "kubeadmConfigPatches": ["a"]}
    rule = {
        "nodes": [{"role": "control-plane", "labels": {"x": "y"}}],
        "kubeadmConfigPatches": ["b"],
    }
    merged = merge_kind_configs(build_default_config(), user, rule)
    assert merged["nodes"] == [{"role": "control-plane", "labels": {"x": "y"}}]
    assert merged["kubeadmConfigPatches"] == ["b"]


def test_merge_drops_name_and_does_not_touch_inputs() -> None:
    base = build_default_config()
    user: dict[str, Any] = {"name": "mine", "featureGates": {"A": True}}
    merged = merge_kind_configs(base, user)
    assert "name" not in merged
    merged["featureGates"]["A"] = False
    assert user == {"name": "mine", "featureGates": {"A": True}}
    assert base == build_default_config()


def test_app_mount_on_every_node_after_user_mounts() -> None:
    config: dict[str, Any] = {
        "nodes": [
            {"role": "control-plane", "extraMounts": [{"hostPath": "data", "containerPath": "/d"}]},
            {"role": "worker"},
        ]
    }
    result = apply_app_mount(config, "/work/job")
    app = {"hostPath": "/work/job", "containerPath": APP_CONTAINER_PATH}
    assert result["nodes"][0]["extraMounts"] == [
        {"hostPath": "/work/job/data", "containerPath": "/d"},
        app,
    ]
    assert result["nodes"][1]["extraMounts"] == [app]
    assert result["kind"] == "Cluster"
    assert result["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert "extraMounts" not in config["nodes"][1], "input changed"


def test_app_mount_without_nodes_and_absolute_host_paths() -> None:
    result = apply_app_mount({}, "/w")
    assert result["nodes"] == [
        {"role": "control-plane", "extraMounts": [{"hostPath": "/w", "containerPath": "/app"}]}
    ]
    mounted = apply_app_mount(
        {"nodes": [{"extraMounts": [{"hostPath": "/abs/../abs2", "containerPath": "/x"}]}]}, "/w"
    )
    assert mounted["nodes"][0]["extraMounts"][0]["hostPath"] == "/abs2"
    with pytest.raises(ValueError, match="absolute"):
        apply_app_mount({}, "relative")


# --------------------------------------------------------- whole pipeline ---


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    return tmp_path


def test_build_kind_config_from_recorded_files(workdir: Path) -> None:
    config = build_kind_config(
        str(workdir), str(DATA / "kind-config-user.yaml"), str(DATA / "kind-config-rule.yaml")
    )
    assert config["featureGates"] == {"JobPodFailurePolicy": True, "SidecarContainers": True}
    assert config["networking"] == {"podSubnet": "10.250.0.0/16"}
    assert "name" not in config
    control_plane, worker = config["nodes"]
    assert control_plane["labels"] == {"ingress-ready": "true"}
    assert control_plane["extraPortMappings"] == [
        {"containerPort": 80, "hostPort": 0, "protocol": "TCP"}
    ]
    assert control_plane["extraMounts"] == [
        {"hostPath": str(workdir / "data"), "containerPath": "/data", "readOnly": True},
        {"hostPath": str(workdir), "containerPath": "/app"},
    ]
    assert worker["extraMounts"] == [{"hostPath": str(workdir), "containerPath": "/app"}]
    assert yaml.safe_load(render_kind_config(config)) == config


def test_build_kind_config_default(workdir: Path) -> None:
    config = build_kind_config(str(workdir))
    assert config == {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "nodes": [
            {
                "role": "control-plane",
                "extraMounts": [{"hostPath": str(workdir), "containerPath": "/app"}],
            }
        ],
    }
    text = render_kind_config(config)
    assert text.startswith("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")


def test_build_kind_config_missing_host_path(tmp_path: Path) -> None:
    user = tmp_path / "kind.yaml"
    shutil.copy(DATA / "kind-config-user.yaml", user)
    with pytest.raises(KindConfigError, match=r"hostPath .*/data does not exist") as info:
        build_kind_config(str(tmp_path), str(user))
    assert str(user) in str(info.value)


def test_build_kind_config_rule_error_names_the_rule_file(workdir: Path) -> None:
    with pytest.raises(KindConfigError) as info:
        build_kind_config(
            str(workdir),
            str(DATA / "kind-config-user.yaml"),
            str(DATA / "kind-config-bad-role.yaml"),
        )
    assert info.value.source == str(DATA / "kind-config-bad-role.yaml")
