#!/usr/bin/env python3
"""Side-by-side benchmark: N independent trivial jobs on the real single-node Slurm.

Contenders, all in one run on the same Slurm:
  local          `--executor local` (the floor: no scheduler at all)
  peer-default   snakemake-executor-plugin-slurm, default settings
  peer-tuned     the peer with --slurm-init-seconds-before-status-checks 1
  kindslurm      this plugin, kind_cluster=0 (plain Slurm jobs)

For each: wall time, CPU time (the Snakemake client plus every Slurm job, from
sacct TotalCPU), and how often sacct / squeue / scontrol were called (counted by
PATH shims that log and exec the real tool). Prints medians of --repeat runs
and ratios against kindslurm. Not a test: machines here are shared and noisy.

    .venv/bin/python benchmarks/compare_slurm.py --jobs 20 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

COUNTED = ("sacct", "squeue", "scontrol", "sbatch", "srun")

ROOT = Path(__file__).resolve().parent.parent
# Each contender runs from its own venv: the peer plugin runs sacct/scontrol at
# import time, and Snakemake imports every installed plugin in every job, so a
# shared venv would charge the peer's calls and CPU to the other contenders.
OURS_PYTHON = ROOT / ".venv" / "bin" / "python"
PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"

CONTENDERS: dict[str, list[str]] = {
    "local": ["--executor", "local", "--cores", "2"],
    "peer-default": ["--executor", "slurm"],
    "peer-tuned": ["--executor", "slurm", "--slurm-init-seconds-before-status-checks", "1"],
    "kindslurm": ["--executor", "kindslurm"],
}


def make_shims(bindir: Path, logfile: Path) -> None:
    """Wrappers that append their name to logfile and exec the real tool."""
    bindir.mkdir(parents=True, exist_ok=True)
    for tool in COUNTED:
        real = shutil.which(tool)
        if real is None:
            continue
        shim = bindir / tool
        shim.write_text(
            "#!/bin/sh\n"
            f"echo {tool} >> '{logfile}'\n"
            f"exec '{real}' \"$@\"\n"
        )
        shim.chmod(0o755)


def write_workflow(workdir: Path, jobs: int) -> None:
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(
        textwrap.dedent(
            f"""
            rule all:
                input: expand("out/{{i}}.txt", i=range({jobs}))

            rule make:
                output: "out/{{i}}.txt"
                resources: kind_cluster=0, mem_mb=500, runtime=5
                shell: "echo {{wildcards.i}} > {{output}}"
            """
        )
    )


def job_cpu_seconds(workdir: Path, since: str) -> float:
    """Sum of TotalCPU over every step of every Slurm job the run submitted (each
    run has its own working directory, which sacct records on the allocation;
    CPU time is recorded on the steps)."""
    proc = subprocess.run(
        ["sacct", "--allusers", "--parsable2", "--noheader",
         "--format=JobID,WorkDir,TotalCPU", f"--starttime={since}", "--endtime=now"],
        capture_output=True, text=True, check=True,
    )
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.count("|") == 2]
    ours = {jobid for jobid, where, _ in rows if "." not in jobid and where == str(workdir)}
    return sum(
        parse_slurm_duration(cpu)
        for jobid, _, cpu in rows
        if "." in jobid and jobid.split(".")[0] in ours and cpu
    )


def parse_slurm_duration(text: str) -> float:
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [float(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    h, m, s = parts
    return days * 86400 + h * 3600 + m * 60 + s


def run_once(name: str, jobs: int, base: Path) -> dict[str, float]:
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    workdir = base / f"{name}-{tag}"
    write_workflow(workdir, jobs)
    calls = workdir / "calls.log"
    make_shims(workdir / "shims", calls)
    env = {**os.environ, "PATH": f"{workdir / 'shims'}:{os.environ['PATH']}"}
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    python = PEER_PYTHON if name.startswith("peer") else OURS_PYTHON
    argv = [str(python), "-m", "snakemake", "--jobs", str(jobs), "--quiet", "all",
            *CONTENDERS[name]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
    missing = [i for i in range(jobs) if not (workdir / "out" / f"{i}.txt").exists()]
    if missing:
        raise SystemExit(f"{name}: outputs missing for {missing}")
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    time.sleep(3)  # accounting lags a little behind job end
    slurm_cpu = 0.0 if name == "local" else job_cpu_seconds(workdir, since)
    counts = calls.read_text().split() if calls.exists() else []
    result = {"wall": wall, "cpu": client_cpu + slurm_cpu}
    for tool in COUNTED:
        result[tool] = float(counts.count(tool))
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[20])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--json", type=Path, help="also write the medians as JSON here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kindslurm-bench-"))
    table: dict[int, dict[str, dict[str, float]]] = {}
    try:
        for jobs in args.jobs:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in args.only}
            for rep in range(args.repeat):
                # Interleave contenders so drift in machine load hits all alike.
                for name in args.only:
                    res = run_once(name, jobs, base)
                    runs[name].append(res)
                    print(f"  {jobs} jobs, {name}, run {rep + 1}: {res['wall']:.1f} s wall",
                          file=sys.stderr, flush=True)
            table[jobs] = {
                name: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                for name, rs in runs.items()
            }
            print_table(jobs, args.repeat, table[jobs])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(table, indent=2))
    return 0


def print_table(jobs: int, repeat: int, medians: dict[str, dict[str, float]]) -> None:
    ours = medians.get("kindslurm")
    print(f"\n{jobs} independent trivial jobs, median of {repeat} runs")
    header = f"{'contender':<14}{'wall s':>9}{'x ours':>8}{'CPU s':>9}{'x ours':>8}"
    header += "".join(f"{t:>10}" for t in COUNTED)
    print(header)
    for name, m in medians.items():
        wall_ratio = m["wall"] / ours["wall"] if ours else float("nan")
        cpu_ratio = m["cpu"] / ours["cpu"] if ours and ours["cpu"] else float("nan")
        row = f"{name:<14}{m['wall']:>9.1f}{wall_ratio:>8.2f}{m['cpu']:>9.1f}{cpu_ratio:>8.2f}"
        row += "".join(f"{m[t]:>10.0f}" for t in COUNTED)
        print(row)


if __name__ == "__main__":
    sys.exit(main())
