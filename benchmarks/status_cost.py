#!/usr/bin/env python3
"""Cost of one status round vs the number of jobs in the run (1, 10, 100, 1,000).

Ours: the executor's query path (`build_sacct_argv` -> `process.run` ->
`parse_sacct`, what `Executor._query` runs once per round). The peer: what
its `check_active_jobs` runs per round before it looks at any job
(`get_min_job_age()` = `scontrol show config`, `is_query_tool_available("sacct")`
= `which sacct`, then `query_job_status(query_job_status_sacct(run))`), run in
the bench venv with the peer's own functions. Both are timed in-process, the
Python start is not counted; every process a round starts is counted through
PATH shims.

1, 10 and 100: that many trivial jobs are submitted under one job name and both
query the real sacct (median of --rounds rounds). 1,000: the recorded answer
tests/data/slurm/sacct_1000_jobs.txt is served by `cat` instead of sacct (the
client side of a round: spawn + parse), parse_sacct is timed alone, and one
real sacct over every allocation since midnight (no name filter) shows what
slurmdbd takes for an answer of that size. Not a test.

    .venv-bench/bin/python benchmarks/status_cost.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from common import PEER_PYTHON, ROOT, SLURM_TOOLS, machine, make_shims, median, write_json

from snakemake_executor_plugin_kindslurm import process
from snakemake_executor_plugin_kindslurm.slurm.status import build_sacct_argv, parse_sacct

RECORDED_1000 = ROOT / "tests" / "data" / "slurm" / "sacct_1000_jobs.txt"
COUNTED = (*SLURM_TOOLS, "which", "cat")
SIZES = (1, 10, 100)

# Runs in the bench venv: the peer's own per-round calls, timed per round.
PEER_ROUND = r"""
import asyncio, json, logging, sys, time
from snakemake_executor_plugin_slurm.job_status_query import (
    get_min_job_age, is_query_tool_available, query_job_status, query_job_status_sacct)

run, rounds, command = sys.argv[1], int(sys.argv[2]), sys.argv[3]
logger = logging.getLogger("peer")
times, parse_counts = [], []
for _ in range(rounds):
    start = time.perf_counter()
    get_min_job_age()                       # check_active_jobs: every round
    is_query_tool_available("sacct")         # check_active_jobs: every round
    query = query_job_status_sacct(run) if command == "sacct" else command
    states, _ = asyncio.run(query_job_status(query, logger))
    times.append(time.perf_counter() - start)
    parse_counts.append(len(states or {}))
print(json.dumps({"times": times, "jobs": parse_counts}))
"""


def submit(name: str, count: int) -> None:
    for _ in range(count):
        process.run(
            ["sbatch", "--parsable", f"--job-name={name}", "--output=/dev/null",
             "--mem=100", "--time=1", "--chdir=/tmp"],
            input="#!/bin/sh\ntrue\n", timeout=60,
        )  # fmt: skip


def wait_listed(name: str, since: datetime, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        listed = len(parse_sacct(process.run(build_sacct_argv("sacct", name, since)).stdout))
        if listed >= count:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"sacct lists only {listed} of {count} jobs named {name}")
        time.sleep(0.5)


def calls_during(calls: Path, action: Any) -> tuple[Any, dict[str, int]]:
    calls.write_text("")
    result = action()
    names = calls.read_text().split()
    return result, {t: names.count(t) for t in COUNTED if names.count(t)}


def our_rounds(argv: list[str], rounds: int, calls: Path) -> dict[str, Any]:
    times, parse_times, jobs = [], [], 0

    def go() -> None:
        nonlocal jobs
        for _ in range(rounds):
            start = time.perf_counter()
            result = process.run(argv, timeout=60)
            states = parse_sacct(result.stdout)
            times.append(time.perf_counter() - start)
            jobs = len(states)
            start = time.perf_counter()
            parse_sacct(result.stdout)
            parse_times.append(time.perf_counter() - start)

    _, counts = calls_during(calls, go)
    return {
        "round_s": median(times),
        "parse_s": median(parse_times),
        "jobs_in_answer": jobs,
        "calls_per_round": {t: n / rounds for t, n in counts.items()},
    }


def peer_rounds(name: str, command: str, rounds: int, calls: Path) -> dict[str, Any]:
    def go(n: int) -> dict[str, Any]:
        proc = subprocess.run(
            [str(PEER_PYTHON), "-c", PEER_ROUND, name, str(n), command],
            capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
        return dict(json.loads(proc.stdout))

    # Importing the peer already runs scontrol and which: count that apart.
    _, at_import = calls_during(calls, lambda: go(0))
    out, counts = calls_during(calls, lambda: go(rounds))
    per_round = {t: (n - at_import.get(t, 0)) / rounds for t, n in counts.items()}
    return {
        "round_s": median(out["times"]),
        "jobs_in_answer": out["jobs"][-1],
        "calls_per_round": {t: n for t, n in per_round.items() if n},
        "calls_at_import": at_import,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--parse-repeats", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = machine()  # the load and time before the runs
    work = Path(tempfile.mkdtemp(prefix="kindslurm-bench-status-"))
    calls = work / "calls.log"
    make_shims(work / "shims", calls, COUNTED)
    os.environ["PATH"] = f"{work / 'shims'}:{os.environ['PATH']}"
    name = f"kindslurm-statusbench-{uuid.uuid4().hex[:8]}"
    since = datetime.now() - timedelta(minutes=10)
    argv = build_sacct_argv("sacct", name, since)
    results: dict[str, Any] = {}
    submitted = 0
    for size in SIZES:
        submit(name, size - submitted)
        submitted = size
        wait_listed(name, since, size)
        results[str(size)] = {
            "source": "real sacct, jobs of one run name",
            "ours": our_rounds(argv, args.rounds, calls),
            "peer": peer_rounds(name, "sacct", args.rounds, calls),
        }
        print(f"  {size} jobs: ours {results[str(size)]['ours']['round_s']:.3f} s/round, "
              f"peer {results[str(size)]['peer']['round_s']:.3f} s/round",
              file=sys.stderr, flush=True)  # fmt: skip

    text = RECORDED_1000.read_text()
    parse_times = []
    for _ in range(args.parse_repeats):
        start = time.perf_counter()
        parse_sacct(text)
        parse_times.append(time.perf_counter() - start)
    cat = ["cat", str(RECORDED_1000)]
    today = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    everything = [
        "sacct", "--allocations", "--allusers", "--parsable2", "--noheader",
        "--format=JobIdRaw,State,ExitCode,Reason", f"--starttime={today:%Y-%m-%dT%H:%M:%S}",
        "--endtime=now",
    ]  # fmt: skip
    big = our_rounds(everything, max(args.rounds // 2, 3), calls)
    results["1000"] = {
        "source": "recorded 1,000-job answer served by cat",
        "ours": {**our_rounds(cat, args.rounds, calls), "parse_s": median(parse_times)},
        "peer": peer_rounds(name, shlex.join(cat), args.rounds, calls),
        "real_sacct_all_allocations_today": {
            "rows": big["jobs_in_answer"],
            "round_s": big["round_s"],
            "parse_s": big["parse_s"],
        },
    }
    data = {
        "benchmark": "status_cost",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": started,
        "rounds": args.rounds,
        "our_argv": argv,
        "results": results,
    }
    write_json(args.json, data)
    shutil.rmtree(work, ignore_errors=True)
    print(f"\nper status round, median of {args.rounds} rounds")
    print(f"{'jobs':>6}{'ours s':>9}{'parse s':>10}{'our calls':>22}{'peer s':>9}"
          f"{'peer calls':>36}")  # fmt: skip
    for size, r in results.items():
        ours, peer = r["ours"], r["peer"]
        print(f"{size:>6}{ours['round_s']:>9.4f}{ours['parse_s']:>10.5f}"
              f"{json.dumps(ours['calls_per_round']):>22}{peer['round_s']:>9.4f}"
              f"{json.dumps(peer['calls_per_round']):>36}")  # fmt: skip
    real = results["1000"]["real_sacct_all_allocations_today"]
    print(
        f"real sacct over all {real['rows']} allocations since midnight: "
        f"{real['round_s']:.3f} s (parse {real['parse_s']:.5f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
