#!/usr/bin/env python3
"""Ten Kubernetes steps: ten separate jobs (a cluster each) vs one group job.

Both modes run the same 10 jobs of one rule with the default kind_cluster=1,
on the real Slurm with the stand-in node image (real kind and Podman; no
Kubernetes API inside). `group` puts the rule in a group and lets it span all
10 components (`--group-components k8s=10`), so Snakemake submits one Slurm
job around one cluster. Per run: wall time, Slurm jobs (sbatch calls), cluster
creations (`kind create cluster` lines in the job logs, kept with
--kindslurm-keep-successful-logs) and distinct K8S_CLUSTER_NAME values the
steps saw. Medians of --repeat runs. Not a test.

    .venv/bin/python benchmarks/group_vs_separate.py --repeat 3 --json out.json
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import (
    OURS_PYTHON,
    SLURM_TOOLS,
    STANDIN_IMAGE,
    count_calls,
    machine,
    make_shims,
    median,
    write_json,
)

STEPS = 10
CREATE_LINE = re.compile(r"^\[kindslurm \S+\] create: kind create cluster ", re.M)
CREATE_TOOK = re.compile(r"^\[kindslurm \S+\] create: cluster \S+ ready; .*\((\d+\.\d+) s\)$", re.M)
MODES = ("separate", "group")


def write_workflow(workdir: Path, mode: str) -> None:
    lines = [
        "localrules: all",
        "",
        "rule all:",
        f'    input: expand("out/{{i}}.txt", i=range({STEPS}))',
        "",
        "rule k8s:",
        '    output: "out/{i}.txt"',
        "    resources: mem_mb=500, runtime=10",
        *(['    group: "k8s"'] if mode == "group" else []),
        "    shell:",
        """        'test -n "$K8S_CLUSTER_NAME" && echo "$K8S_CLUSTER_NAME" > {output}'""",
    ]
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text("\n".join(lines) + "\n")


def run_once(mode: str, base: Path) -> dict[str, float]:
    workdir = base / f"{mode}-{uuid.uuid4().hex[:8]}"
    write_workflow(workdir, mode)
    calls = workdir / "calls.log"
    make_shims(workdir / "shims", calls)
    env = {**os.environ, "PATH": f"{workdir / 'shims'}:{os.environ['PATH']}"}
    argv = [
        str(OURS_PYTHON), "-m", "snakemake", "--executor", "kindslurm", "--jobs", str(STEPS),
        "--quiet", "all", "--kindslurm-node-image", STANDIN_IMAGE,
        "--kindslurm-keep-successful-logs",
    ]  # fmt: skip
    if mode == "group":
        # Without a cores limit Snakemake sums the group's resources as if all
        # 10 ran at once (10 CPUs: pending forever on a 2-CPU node); with it,
        # the steps are layered two at a time inside the one job.
        argv += ["--group-components", f"k8s={STEPS}", "--cores", "2"]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stdout}\n{proc.stderr}")
    names = {(workdir / "out" / f"{i}.txt").read_text().strip() for i in range(STEPS)}
    logdir = workdir / ".snakemake" / "kindslurm_logs"
    logs = [p.read_text(errors="replace") for p in logdir.glob("**/*.log")]
    creates = sum(len(CREATE_LINE.findall(text)) for text in logs)
    create_seconds = [float(t) for text in logs for t in CREATE_TOOK.findall(text)]
    result = {
        "wall": wall,
        "slurm_jobs": float(count_calls(calls, SLURM_TOOLS)["sbatch"]),
        "job_logs": float(len(logs)),
        "cluster_creations": float(creates),
        "distinct_clusters_seen": float(len(names)),
        "create_seconds_total": sum(create_seconds),
    }
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = machine()  # the load and time before the runs
    base = Path(tempfile.mkdtemp(prefix="kindslurm-bench-group-"))
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in args.modes}
    try:
        for rep in range(args.repeat):
            for mode in args.modes:
                res = run_once(mode, base)
                runs[mode].append(res)
                print(f"  {mode}, run {rep + 1}: {res['wall']:.1f} s, "
                      f"{res['cluster_creations']:.0f} creates, {res['slurm_jobs']:.0f} jobs",
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)
    medians = {m: {k: median([r[k] for r in rs]) for k in rs[0]} for m, rs in runs.items()}
    data: dict[str, Any] = {
        "benchmark": "group_vs_separate",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": started,
        "steps": STEPS,
        "repeat": args.repeat,
        "results": {m: {"median": medians[m], "runs": runs[m]} for m in args.modes},
    }
    write_json(args.json, data)
    print(f"\n{STEPS} Kubernetes steps (stand-in node), median of {args.repeat} run(s)")
    print(f"{'mode':<10}{'wall s':>9}{'Slurm jobs':>12}{'creates':>9}{'clusters':>10}"
          f"{'create s':>10}")  # fmt: skip
    for mode, m in medians.items():
        print(f"{mode:<10}{m['wall']:>9.1f}{m['slurm_jobs']:>12.0f}"
              f"{m['cluster_creations']:>9.0f}{m['distinct_clusters_seen']:>10.0f}"
              f"{m['create_seconds_total']:>10.1f}")  # fmt: skip
    if set(medians) == set(MODES):
        sep, grp = medians["separate"], medians["group"]
        print(f"separate / group: wall x{sep['wall'] / grp['wall']:.2f}, creations "
              f"x{sep['cluster_creations'] / max(grp['cluster_creations'], 1):.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
