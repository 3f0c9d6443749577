"""Helpers shared by the benchmark scripts (not a test module).

PATH shims that count calls to the Slurm tools, the machine description that
goes into every JSON result, and small statistics helpers.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Each contender runs from its own venv: the peer plugin runs sacct/scontrol at
# import time, and Snakemake imports every installed plugin in every job, so a
# shared venv would charge the peer's calls and CPU to the other contenders.
OURS_PYTHON = ROOT / ".venv" / "bin" / "python"
PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
STANDIN_IMAGE = "localhost/kindslurm-standin-node:latest"

# Every Slurm client a Snakemake executor might start, plus `which` (the peer
# asks `which sacct` in every status round).
SLURM_TOOLS = ("sbatch", "srun", "sacct", "squeue", "scontrol", "scancel", "sinfo",
               "sacctmgr", "sshare")  # fmt: skip


def make_shims(bindir: Path, logfile: Path, tools: Iterable[str] = SLURM_TOOLS) -> None:
    """Wrappers that append their name to logfile and exec the real tool."""
    bindir.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        real = shutil.which(tool)
        if real is None:
            continue
        shim = bindir / tool
        shim.write_text(f"#!/bin/sh\necho {tool} >> '{logfile}'\nexec '{real}' \"$@\"\n")
        shim.chmod(0o755)


def count_calls(logfile: Path, tools: Iterable[str]) -> dict[str, int]:
    names = logfile.read_text().split() if logfile.exists() else []
    return {tool: names.count(tool) for tool in tools}


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (proc.stdout or proc.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine() -> dict[str, Any]:
    """What the numbers were measured on (goes into every JSON result)."""
    cpu = "?"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "slurm": _first_line(["sinfo", "--version"]),
        "kind": _first_line(["kind", "version"]),
        "podman": _first_line(["podman", "--version"]),
    }


def write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
