"""What the lifecycle runner is asked to do, as plain data.

The executor (and the `kindslurm` command) build a RunnerSpec, serialise it to
JSON on the runner's command line, and the runner inside the Slurm allocation
reads it back. Keeping it a flat, JSON-able dataclass means the job script
holds no logic and the same spec can be replayed by hand for debugging.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

# Exit codes of the runner that are not the workload's own. They sit in a range
# shells do not use for signals (128+N) and are documented in the README.
EXIT_BAD_CONFIG = 117
EXIT_PREFLIGHT_FAILED = 118
EXIT_CLUSTER_CREATE_FAILED = 119
EXIT_CLEANUP_FAILED = 120

EXIT_CODE_MEANINGS = {
    EXIT_BAD_CONFIG: "invalid runner configuration (kind config or spec)",
    EXIT_PREFLIGHT_FAILED: "preflight checks failed (node not ready for Kind)",
    EXIT_CLUSTER_CREATE_FAILED: "cluster creation failed",
    EXIT_CLEANUP_FAILED: "workload succeeded but the cluster could not be deleted",
}


@dataclass(frozen=True)
class RunnerSpec:
    """Everything the runner needs besides the workload command."""

    cluster: bool = True
    workdir: str = "."
    node_image: str | None = None
    kind_config: str | None = None
    rule_kind_config: str | None = None
    provider: str = "podman"
    kind_bin: str = "kind"
    kubectl_bin: str = "kubectl"
    runtime_bin: str = "podman"
    create_timeout: float = 300.0
    delete_timeout: float = 60.0
    keep_on_failure: bool = False
    log_dir: str | None = None
    create_lock: bool = False
    preflight: bool = True
    preload_images: tuple[str, ...] = field(default_factory=tuple)
    # Seconds the workload gets between the SIGTERM we forward and SIGKILL;
    # keep it well inside the Slurm --signal grace (cleanup needs ~1-5 s).
    workload_term_timeout: float = 10.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunnerSpec:
        data: Any = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("runner spec must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown runner spec keys: {', '.join(unknown)}")
        if "preload_images" in data:
            data["preload_images"] = tuple(data["preload_images"])
        return cls(**data)


# Preload entries with these endings name an archive file (`kind load
# image-archive`); anything else is an image name in the runtime's storage.
# The executor, the CLI and preflight all go by this one list.
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".oci")


def split_image_list(text: object) -> list[str]:
    """`a.tar, localhost/img:1` -> archive paths made absolute, image names as given."""
    if not text:
        return []
    items = [item.strip() for item in str(text).replace("\n", ",").split(",")]
    return [
        os.path.abspath(os.path.expanduser(item)) if item.endswith(ARCHIVE_SUFFIXES) else item
        for item in items
        if item
    ]
