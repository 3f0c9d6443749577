"""The job's private kubeconfig.

kind writes the cluster into the file given by `kind create --kubeconfig` as
context `kind-<name>`. Workload scripts written for the bash prototype say
`kubectl --context "$K8S_CLUSTER_NAME"`, so we add a context named exactly
`<name>` (same cluster and user) and make it the current one. kind's own
context stays, for people who follow kind's documentation.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

KUBECONFIG_MODE = 0o600


class KubeconfigError(Exception):
    """The kubeconfig kind wrote cannot be used; says which file and why."""


def kind_context_name(cluster_name: str) -> str:
    return f"kind-{cluster_name}"


def parse_kubeconfig(text: str, source: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise KubeconfigError(f"{source}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise KubeconfigError(f"{source}: expected a kubeconfig mapping, got {type(data).__name__}")
    return data


def rewrite_kubeconfig(data: Mapping[str, Any], cluster_name: str) -> dict[str, Any]:
    """Return a copy with a context named cluster_name that is the current-context. Pure.

    The new context copies kind's `kind-<name>` context; when that is missing
    and the file has exactly one context, that one is copied instead.
    """
    result: dict[str, Any] = copy.deepcopy(dict(data))
    contexts = result.get("contexts") or []
    if not isinstance(contexts, list):
        raise KubeconfigError("kubeconfig `contexts` is not a list")
    wanted = kind_context_name(cluster_name)
    named = [c for c in contexts if isinstance(c, dict) and c.get("name") == wanted]
    if named:
        source = named[0]
    elif len(contexts) == 1 and isinstance(contexts[0], dict):
        source = contexts[0]
    else:
        found = ", ".join(str(c.get("name")) for c in contexts if isinstance(c, dict)) or "none"
        raise KubeconfigError(f"kubeconfig has no context {wanted!r} (contexts: {found})")
    if not isinstance(source.get("context"), dict):
        raise KubeconfigError(f"kubeconfig context {source.get('name')!r} has no `context` entry")
    alias = {"name": cluster_name, "context": copy.deepcopy(source["context"])}
    kept = [c for c in contexts if not (isinstance(c, dict) and c.get("name") == cluster_name)]
    result["contexts"] = [*kept, alias]
    result["current-context"] = cluster_name
    return result


def write_private_file(path: str | os.PathLike[str], text: str) -> None:
    """Write text to path atomically with mode 0600 (whatever the umask)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, KUBECONFIG_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, KUBECONFIG_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def ensure_cluster_context(path: str | os.PathLike[str], cluster_name: str) -> None:
    """Give the kubeconfig at path a current context named cluster_name; mode 0600."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise KubeconfigError(f"cannot read the kubeconfig kind wrote ({path}): {err}") from err
    data = rewrite_kubeconfig(parse_kubeconfig(text, str(path)), cluster_name)
    write_private_file(path, yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
