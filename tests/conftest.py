"""Shared fixtures. Integration prerequisites are checked here once; a missing one
skips the test with its name, unless KINDSLURM_REQUIRE_INTEGRATION=1 (set by
scripts/test.sh), where it fails instead, so CI cannot go green by skipping."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

REQUIRE = os.environ.get("KINDSLURM_REQUIRE_INTEGRATION") == "1"


def missing(reason: str) -> None:
    """Skip (or, when integration is required, fail) naming the missing prerequisite."""
    if REQUIRE:
        pytest.fail(f"missing prerequisite: {reason}", pytrace=False)
    pytest.skip(f"missing prerequisite: {reason}")


def _slurm_up() -> str | None:
    for tool in ("sbatch", "sacct", "squeue", "scancel"):
        if shutil.which(tool) is None:
            return f"{tool} not on PATH (run scripts/test.sh, which installs Slurm)"
    try:
        proc = subprocess.run(
            ["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"sinfo failed: {err}"
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in states):
        return f"no usable Slurm node (sinfo: {proc.stdout.strip() or proc.stderr.strip()})"
    return None


@pytest.fixture(scope="session")
def slurm() -> None:
    """A running single-node Slurm with accounting (testbed/slurm.sh start)."""
    problem = _slurm_up()
    if problem:
        missing(problem)


STANDIN_IMAGE = "localhost/kindslurm-standin-node:latest"
NEVER_READY_IMAGE = "localhost/kindslurm-standin-node:never-ready"


@pytest.fixture(scope="session")
def kind_ready() -> str:
    """Real kind + podman as root + the stand-in node image; returns the image name."""
    if os.geteuid() != 0:
        missing("root (kind refuses rootless Podman on cgroup v1)")
    for tool in ("kind", "podman", "kubectl"):
        if shutil.which(tool) is None:
            missing(f"{tool} not on PATH (testbed/kind.sh install)")
    proc = subprocess.run(["podman", "image", "exists", STANDIN_IMAGE], timeout=60)
    if proc.returncode != 0:
        missing(f"stand-in node image {STANDIN_IMAGE} (testbed/kind.sh build-standin-image)")
    return STANDIN_IMAGE
