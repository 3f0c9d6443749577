"""Run real `snakemake --executor kindslurm` workflows for integration tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

RUN_NAME = re.compile(r"jobs of this run are named (kindslurm-[0-9a-f]+)")


@dataclass
class Finished:
    returncode: int
    output: str
    workdir: Path

    @property
    def run_name(self) -> str | None:
        match = RUN_NAME.search(self.output)
        return match.group(1) if match else None


def write_workflow(workdir: Path, snakefile: str, files: dict[str, str] | None = None) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Snakefile").write_text(textwrap.dedent(snakefile))
    for name, text in (files or {}).items():
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return workdir


def snakemake_argv(workdir: Path, *extra: str, jobs: int = 20) -> list[str]:
    return [
        sys.executable, "-m", "snakemake",
        "--executor", "kindslurm",
        "--jobs", str(jobs),
        "--directory", str(workdir),
        "--snakefile", str(workdir / "Snakefile"),
        "--latency-wait", "10",
        "--kindslurm-init-seconds-before-status-checks", "1",
        *extra,
    ]


def run_snakemake(
    workdir: Path, *extra: str, jobs: int = 20, timeout: float = 600,
    env: dict[str, str] | None = None,
) -> Finished:
    proc = subprocess.run(
        snakemake_argv(workdir, *extra, jobs=jobs),
        capture_output=True, text=True, timeout=timeout, cwd=workdir,
        env={**os.environ, **(env or {})},
    )
    return Finished(proc.returncode, proc.stdout + proc.stderr, workdir)


def squeue_jobs(run_name: str) -> list[str]:
    proc = subprocess.run(
        ["squeue", "--noheader", f"--name={run_name}", "--format=%i %T"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return [line for line in proc.stdout.splitlines() if line.strip()]


def wait_until(predicate, timeout: float, interval: float = 0.5) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def job_active(job: str) -> bool:
    """Does squeue list the job in a state that may still run its processes?"""
    proc = subprocess.run(
        ["squeue", "--noheader", f"--jobs={job}", "--states=all", "--format=%T"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    state = proc.stdout.strip()
    return proc.returncode == 0 and state in (
        "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED",
    )  # fmt: skip
