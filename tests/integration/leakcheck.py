"""What a kindslurm run may leave behind, and checks that it did not.

Reusable by any integration test (runner-level or Slurm-level): node
containers (kind's label io.x-k8s.kind.cluster=ks-...), their volumes (kind's
`<node>=true` label, or our io.kindslurm.cluster label), the runner's private
temp dirs (`$TMPDIR/kindslurm-ks-...`) and the per-user state records.

Other people's kind clusters (names not starting with `ks-`) are ignored.
Compare a snapshot taken before with one taken after when other runs may be
going on at the same time (`leftovers() - before`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

RUNTIME = "podman"
KIND_CLUSTER_LABEL = "io.x-k8s.kind.cluster"
OUR_CLUSTER_LABEL = "io.kindslurm.cluster"
_OUR_NODE_VOLUME_LABEL = re.compile(
    r"^(ks-[a-z0-9.-]+)-(control-plane|worker|external-load-balancer)\d*$"
)


def _json(argv: list[str]) -> list[dict[str, object]]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    data = json.loads(proc.stdout or "[]")
    return data if isinstance(data, list) else []


def _ours(cluster_value: str, cluster: str | None) -> bool:
    return cluster_value == cluster if cluster else cluster_value.startswith("ks-")


def kind_node_containers(cluster: str | None = None, runtime: str = RUNTIME) -> list[str]:
    """Names of node containers of one cluster (or of every ks-* cluster)."""
    items = _json(
        [runtime, "ps", "-a", "--format", "json", "--filter", f"label={KIND_CLUSTER_LABEL}"]
    )
    names: list[str] = []
    for item in items:
        labels = item.get("Labels") or {}
        assert isinstance(labels, dict)
        if _ours(str(labels.get(KIND_CLUSTER_LABEL, "")), cluster):
            raw = item.get("Names") or []
            names.extend(raw if isinstance(raw, list) else [str(raw)])
    return sorted(names)


def kind_node_volumes(cluster: str | None = None, runtime: str = RUNTIME) -> list[str]:
    """Volumes of one cluster's nodes (or of every ks-* cluster's nodes)."""
    found: list[str] = []
    for item in _json([runtime, "volume", "ls", "--format", "json"]):
        labels = item.get("Labels") or {}
        assert isinstance(labels, dict)
        owners = {str(labels[OUR_CLUSTER_LABEL])} if OUR_CLUSTER_LABEL in labels else set()
        for key, value in labels.items():
            match = _OUR_NODE_VOLUME_LABEL.match(str(key))
            if match and value == "true":
                owners.add(match.group(1))
        if any(_ours(owner, cluster) for owner in owners):
            found.append(str(item.get("Name")))
    return sorted(found)


def kindslurm_temp_dirs(
    tmpdir: str | os.PathLike[str] | None = None, cluster: str | None = None
) -> list[str]:
    """The runner's private temp dirs (kubeconfig, kind config, shim) under tmpdir."""
    base = Path(tmpdir or tempfile.gettempdir())
    pattern = f"kindslurm-{cluster}-*" if cluster else "kindslurm-ks-*"
    return sorted(str(p) for p in base.glob(pattern) if p.is_dir())


def state_records(cluster: str | None = None, environ: dict[str, str] | None = None) -> list[str]:
    """This user's state records (`${XDG_RUNTIME_DIR:-/tmp}/kindslurm-<uid>/clusters`)."""
    env = os.environ if environ is None else environ
    base = Path(env.get("XDG_RUNTIME_DIR") or "/tmp") / f"kindslurm-{os.getuid()}" / "clusters"
    pattern = f"{cluster}.json" if cluster else "ks-*.json"
    return sorted(str(p) for p in base.glob(pattern))


@dataclass(frozen=True)
class Leftovers:
    containers: frozenset[str] = frozenset()
    volumes: frozenset[str] = frozenset()
    tempdirs: frozenset[str] = frozenset()
    records: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.containers or self.volumes or self.tempdirs or self.records)

    def __sub__(self, other: Leftovers) -> Leftovers:
        return Leftovers(
            self.containers - other.containers,
            self.volumes - other.volumes,
            self.tempdirs - other.tempdirs,
            self.records - other.records,
        )

    def describe(self) -> str:
        parts = [
            f"{what}: {', '.join(sorted(items))}"
            for what, items in (
                ("node containers", self.containers),
                ("volumes", self.volumes),
                ("temp dirs", self.tempdirs),
                ("state records", self.records),
            )
            if items
        ]
        return "; ".join(parts) or "nothing"


def leftovers(
    cluster: str | None = None, tmpdir: str | os.PathLike[str] | None = None
) -> Leftovers:
    """Everything of ours that exists now (for one cluster, or all ks-* clusters)."""
    return Leftovers(
        frozenset(kind_node_containers(cluster)),
        frozenset(kind_node_volumes(cluster)),
        frozenset(kindslurm_temp_dirs(tmpdir, cluster)),
        frozenset(state_records(cluster)),
    )


def assert_nothing_left(
    cluster: str | None = None,
    tmpdir: str | os.PathLike[str] | None = None,
    before: Leftovers | None = None,
) -> None:
    """Fail with the list of leftovers (new since `before`, if given)."""
    left = leftovers(cluster, tmpdir)
    if before is not None:
        left = left - before
    assert not left, f"kindslurm left behind: {left.describe()}"
