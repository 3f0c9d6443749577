#!/usr/bin/env python3
"""The lifecycle runner's own cost per job, split by phase. Not a test.

Without a cluster (`{"cluster": false}`, what a kind_cluster=0 job runs): the
runner's wall time around `true`, against `true` and `python -c pass` started
the same way (the peer's job script has no runner: its floor is the Python
start of Snakemake itself). With `date +%s.%N` as the workload the time is
split into process start -> workload start and workload end -> exit.

With the stand-in cluster (real kind + Podman, as in a Kubernetes job): the
runner's own timestamped phase lines (`[kindslurm <time>] <phase>: ...
(N.NN s)`) give preflight, create, workload and delete; what the wall time
leaves over is the runner's overhead (Python start, imports, config, temp
dir, shim, state record, cleanup of its files). Medians of --runs.

    .venv/bin/python benchmarks/runner_overhead.py --runs 20 --cluster-runs 7 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import OURS_PYTHON, ROOT, STANDIN_IMAGE, machine, median, write_json

RUNNER = [str(OURS_PYTHON), "-m", "snakemake_executor_plugin_kindslurm.runner"]
TARGET_OVERHEAD = 0.3
PHASE_LINES = {
    "preflight": re.compile(r"\] preflight: \d+ ok, \d+ warn, \d+ fail \((\d+\.\d+) s\)$", re.M),
    "create": re.compile(r"\] create: cluster \S+ ready; .*\((\d+\.\d+) s\)$", re.M),
    "workload": re.compile(r"\] workload: exited with code 0 \((\d+\.\d+) s\)$", re.M),
    "delete": re.compile(r"\] delete: cluster \S+ deleted.*\((\d+\.\d+) s\)$", re.M),
}


def _env(tmpdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(TMPDIR=str(tmpdir), KIND_EXPERIMENTAL_PROVIDER="podman", PYTHONPATH=str(ROOT))
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str, str]:
    """(start, end) wall clock around one process, its stdout and stderr."""
    start = time.time()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    end = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}):\n{proc.stderr}")
    return start, end, proc.stdout, proc.stderr


def no_cluster(runs: int, work: Path) -> dict[str, Any]:
    env = _env(work)
    spec = json.dumps({"cluster": False, "workdir": str(work)})
    runner = [*RUNNER, "--spec", spec, "--"]
    cases = {
        "true": ["true"],
        "python -c pass": [str(OURS_PYTHON), "-c", "pass"],
        "runner -- true": [*runner, "true"],
    }
    walls: dict[str, list[float]] = {name: [] for name in cases}
    split: dict[str, list[float]] = {k: [] for k in ("date_pre", "date_post", "pre", "post")}
    for _ in range(runs):
        for name, argv in cases.items():
            start, end, _, _ = timed(argv, env, work)
            walls[name].append(end - start)
        # `date` reports when it ran: before it = start-up, after it = shutdown
        for key, argv in (("date", ["date", "+%s.%N"]), ("", [*runner, "date", "+%s.%N"])):
            start, end, out, _ = timed(argv, env, work)
            ran = float(out.strip())
            split[f"{key}_pre" if key else "pre"].append(ran - start)
            split[f"{key}_post" if key else "post"].append(end - ran)
    med = {name: median(v) for name, v in walls.items()}
    pre = median(split["pre"]) - median(split["date_pre"])
    post = median(split["post"]) - median(split["date_post"])
    return {
        "runs": runs,
        "wall_median": med,
        "overhead_vs_true": med["runner -- true"] - med["true"],
        "overhead_vs_python": med["runner -- true"] - med["python -c pass"],
        "start_to_workload": pre,
        "workload_to_exit": post,
        "raw": {"walls": walls, "split": split},
    }


def parse_phases(log: str) -> dict[str, float]:
    """Seconds per phase from the runner's log (the line that ends each phase)."""
    found: dict[str, float] = {}
    for phase, pattern in PHASE_LINES.items():
        match = pattern.search(log)
        if not match:
            raise ValueError(f"no {phase} line in the runner's log:\n{log}")
        found[phase] = float(match.group(1))
    return found


def with_cluster(runs: int, work: Path) -> dict[str, Any]:
    env = _env(work)
    spec = json.dumps({"cluster": True, "workdir": str(work), "node_image": STANDIN_IMAGE})
    rows: list[dict[str, float]] = []
    for index in range(runs):
        start, end, _, log = timed([*RUNNER, "--spec", spec, "--", "true"], env, work)
        phases = parse_phases(log)
        total = end - start
        rows.append({**phases, "total": total, "rest": total - sum(phases.values())})
        print(f"  cluster run {index + 1}: {total:.2f} s, rest {rows[-1]['rest']:.3f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        leftovers = [p for p in work.iterdir() if p.name.startswith("kindslurm-")]
        if leftovers:
            raise SystemExit(f"the runner left {leftovers}")
    return {
        "runs": runs,
        "median": {k: median([r[k] for r in rows]) for k in rows[0]},
        "raw": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs without a cluster")
    parser.add_argument("--cluster-runs", type=int, default=7, help="runs with the stand-in")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = machine()  # the load and time before the runs
    work = Path(tempfile.mkdtemp(prefix="kindslurm-bench-runner-"))
    try:
        plain = no_cluster(args.runs, work)
        cluster = with_cluster(args.cluster_runs, work) if args.cluster_runs else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_json(
        args.json,
        {
            "benchmark": "runner_overhead",
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": started,
            "target_overhead_s": TARGET_OVERHEAD,
            "no_cluster": plain,
            "cluster": cluster,
        },
    )
    print(f"\nwithout a cluster, median of {args.runs} runs (seconds)")
    for name, value in plain["wall_median"].items():
        print(f"  {name:<18}{value:8.3f}")
    print(f"  runner overhead vs `true`:        {plain['overhead_vs_true']:.3f}")
    print(f"  runner overhead vs python start:  {plain['overhead_vs_python']:.3f}")
    print(f"  start -> workload start:          {plain['start_to_workload']:.3f}")
    print(f"  workload end -> exit:             {plain['workload_to_exit']:.3f}")
    if cluster:
        print(f"\nwith the stand-in cluster, median of {args.cluster_runs} runs (seconds)")
        for name, value in cluster["median"].items():
            print(f"  {name:<10}{value:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
