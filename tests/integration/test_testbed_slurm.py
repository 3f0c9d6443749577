"""Checks the running single-node Slurm test bed (testbed/slurm.sh).

These tests do not start the test bed; run ``slurm.sh install && slurm.sh start``
(as root) first. They only submit tiny jobs and read accounting.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import REQUIRE

pytestmark = pytest.mark.integration

SCRIPT = (
    Path(__file__).resolve().parents[2]
    / "snakemake_executor_plugin_kindslurm"
    / "testbed"
    / "slurm.sh"
)

# States after which a job no longer changes (sacct prints e.g. "CANCELLED by 0").
_ACTIVE_STATES = {"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING"}
_TIMEOUT_S = 60.0

if shutil.which("sbatch") is None:
    if REQUIRE:  # scripts/test.sh: a missing prerequisite is a failure, not a skip
        pytest.fail(
            "missing prerequisite: sbatch not on PATH (run testbed/slurm.sh install and start)",
            pytrace=False,
        )
    pytest.skip(
        "sbatch not on PATH: Slurm client missing (run testbed/slurm.sh install and start)",
        allow_module_level=True,
    )


def _run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def _submit(tmp_path: Path, command: str, *extra: str) -> str:
    proc = _run(
        "sbatch",
        "--parsable",
        "--job-name=kindslurm-testbed-check",
        f"--chdir={tmp_path}",
        "--output=/dev/null",
        *extra,
        f"--wrap={command}",
    )
    assert proc.returncode == 0, f"sbatch failed: {proc.stderr.strip()}"
    # --parsable prints "jobid" or "jobid;cluster".
    return proc.stdout.strip().split(";")[0]


def _wait_for_final(job_id: str) -> tuple[str, str]:
    """Polls sacct until job_id leaves the active states; returns (state, exit code)."""
    deadline = time.monotonic() + _TIMEOUT_S
    last = ""
    try:
        while time.monotonic() < deadline:
            proc = _run(
                "sacct",
                "-X",
                "--parsable2",
                "--noheader",
                "--format=JobIdRaw,State,ExitCode",
                "-j",
                job_id,
            )
            for line in proc.stdout.splitlines():
                jid, state, exit_code = line.split("|")
                if jid != job_id:
                    continue
                last = line
                if (state.split() or [""])[0] not in _ACTIVE_STATES:
                    return state, exit_code
            time.sleep(0.25)
    except BaseException:
        _run("scancel", job_id)
        raise
    _run("scancel", job_id)
    pytest.fail(f"job {job_id} not finished in sacct after {_TIMEOUT_S:.0f}s (last: {last!r})")


def test_status_reports_all_daemons_running() -> None:
    proc = _run("bash", str(SCRIPT), "status")
    assert proc.returncode == 0, f"slurm.sh status:\n{proc.stdout}{proc.stderr}"
    for daemon in ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd"):
        assert daemon in proc.stdout


def test_trivial_job_completes_in_accounting(tmp_path: Path) -> None:
    job_id = _submit(tmp_path, "true")
    assert _wait_for_final(job_id) == ("COMPLETED", "0:0")


def test_exit_code_3_is_failed_in_accounting(tmp_path: Path) -> None:
    job_id = _submit(tmp_path, "exit 3")
    assert _wait_for_final(job_id) == ("FAILED", "3:0")


def test_short_partition_accepts_jobs(tmp_path: Path) -> None:
    job_id = _submit(tmp_path, "true", "--partition=short")
    assert _wait_for_final(job_id) == ("COMPLETED", "0:0")
