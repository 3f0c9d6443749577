#!/usr/bin/env python3
"""Side-by-side benchmark: N independent trivial jobs on the real single-node Slurm.

Contenders, all in one run on the same Slurm:
  local          `--executor local` (the floor: no scheduler at all)
  peer-default   snakemake-executor-plugin-slurm, default settings
  peer-tuned     the peer with --slurm-init-seconds-before-status-checks 1
  kindslurm      this plugin, kind_cluster=0 (plain Slurm jobs)

For each: wall time; CPU time (the Snakemake client and everything it waited
for, plus every step of every Slurm job of the run from sacct TotalCPU); and
how often each Slurm client tool was started (PATH shims that log and exec the
real tool). Prints medians of --repeat runs and ratios against kindslurm.
Not a test: machines here are shared and noisy.

    .venv-bench/bin/python benchmarks/compare_slurm.py --jobs 20 --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    OURS_PYTHON,
    PEER_PYTHON,
    SLURM_TOOLS,
    count_calls,
    machine,
    make_shims,
    median,
    write_json,
)

CONTENDERS: dict[str, list[str]] = {
    "local": ["--executor", "local", "--cores", "2"],
    "peer-default": ["--executor", "slurm"],
    "peer-tuned": ["--executor", "slurm", "--slurm-init-seconds-before-status-checks", "1"],
    "kindslurm": ["--executor", "kindslurm"],
}
# sacct records a job a moment after it ends; TotalCPU of its steps a little later.
ACCOUNTING_WAIT = 30.0


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


def parse_slurm_duration(text: str) -> float:
    """sacct's `[D-][HH:]MM:SS[.mmm]` as seconds."""
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
    parts = [float(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0.0)
    h, m, s = parts
    return days * 86400 + h * 3600 + m * 60 + s


def slurm_jobs_of_run(workdir: Path, since: str) -> tuple[int, float]:
    """(allocations, summed TotalCPU of their steps) of every Slurm job run from
    workdir (each run has its own working directory, which sacct records on the
    allocation line; CPU time is recorded on the step lines)."""
    proc = subprocess.run(
        ["sacct", "--allusers", "--parsable2", "--noheader",
         "--format=JobID,WorkDir,TotalCPU,State", f"--starttime={since}", "--endtime=now"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.count("|") == 3]
    ours = {jobid for jobid, where, _, _ in rows if "." not in jobid and where == str(workdir)}
    cpu = sum(
        parse_slurm_duration(total)
        for jobid, _, total, _ in rows
        if "." in jobid and jobid.split(".")[0] in ours and total
    )
    return len(ours), cpu


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
            *CONTENDERS[name]]  # fmt: skip
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
    allocations, slurm_cpu = 0, 0.0
    if name != "local":
        # Wait until accounting lists every job of the run: a CPU sum over a
        # partial list would flatter whoever finished last.
        deadline = time.monotonic() + ACCOUNTING_WAIT
        while True:
            allocations, slurm_cpu = slurm_jobs_of_run(workdir, since)
            if allocations >= jobs or time.monotonic() > deadline:
                break
            time.sleep(1)
        if allocations != jobs:
            print(f"  warning: sacct lists {allocations} of {jobs} jobs of {name}",
                  file=sys.stderr)  # fmt: skip
    result: dict[str, float] = {
        "wall": wall,
        "cpu": client_cpu + slurm_cpu,
        "client_cpu": client_cpu,
        "slurm_cpu": slurm_cpu,
        "slurm_jobs": float(allocations),
    }
    result.update({tool: float(n) for tool, n in count_calls(calls, SLURM_TOOLS).items()})
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[20])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--json", type=Path, help="also write medians and every run here")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kindslurm-bench-"))
    data: dict[str, Any] = {
        "benchmark": "compare_slurm",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "repeat": args.repeat,
        "results": {},
    }
    try:
        for jobs in args.jobs:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in args.only}
            for rep in range(args.repeat):
                # Interleave contenders so drift in machine load hits all alike.
                for name in args.only:
                    res = run_once(name, jobs, base)
                    runs[name].append(res)
                    print(f"  {jobs} jobs, {name}, run {rep + 1}: {res['wall']:.1f} s wall, "
                          f"{res['cpu']:.1f} s CPU", file=sys.stderr, flush=True)  # fmt: skip
            medians = {
                name: {k: median([r[k] for r in rs]) for k in rs[0]} for name, rs in runs.items()
            }
            data["results"][str(jobs)] = {
                name: {"median": medians[name], "runs": runs[name]} for name in args.only
            }
            write_json(args.json, data)  # after every size: a late failure keeps the rest
            print_table(jobs, args.repeat, medians)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def print_table(jobs: int, repeat: int, medians: dict[str, dict[str, float]]) -> None:
    ours = medians.get("kindslurm")
    tools = [t for t in SLURM_TOOLS if any(m[t] for m in medians.values())]
    print(f"\n{jobs} independent trivial jobs, median of {repeat} run(s)")
    header = f"{'contender':<14}{'wall s':>9}{'x ours':>8}{'CPU s':>9}{'x ours':>8}"
    header += "".join(f"{t:>10}" for t in tools)
    print(header)
    for name, m in medians.items():
        wall_ratio = m["wall"] / ours["wall"] if ours else float("nan")
        cpu_ratio = m["cpu"] / ours["cpu"] if ours and ours["cpu"] else float("nan")
        row = f"{name:<14}{m['wall']:>9.1f}{wall_ratio:>8.2f}{m['cpu']:>9.1f}{cpu_ratio:>8.2f}"
        row += "".join(f"{m[t]:>10.0f}" for t in tools)
        print(row)


if __name__ == "__main__":
    sys.exit(main())
