#!/usr/bin/env bash
# Run every benchmark in one go on the real single-node Slurm (+ kind, Podman
# and the stand-in node image for the Kubernetes ones), write JSON and text to
# benchmarks/results/ (gitignored), then regenerate the tables of
# benchmarks/RESULTS.md and benchmarks/walltime.png.
#
#   bash benchmarks/run_all.sh
#
# Budget on the 2-core build machine: about 35 minutes. The peer with default
# settings needs ~5 minutes for 100 jobs, so 100 jobs run once by default;
# REPEAT_100=3 repeats them too (about 25 minutes more).
set -euo pipefail

cd "$(dirname "$0")/.."
BENCH_PY=.venv-bench/bin/python   # our plugin + the peer + matplotlib
OURS_PY=.venv/bin/python          # our plugin only
OUT=benchmarks/results
REPEAT_20=${REPEAT_20:-3}
REPEAT_100=${REPEAT_100:-1}
mkdir -p "$OUT"
rm -f "$OUT"/*.json

step() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }
started=$(date +%s)

step "compare_slurm, 20 jobs x $REPEAT_20"
$BENCH_PY benchmarks/compare_slurm.py --jobs 20 --repeat "$REPEAT_20" \
    --json "$OUT/compare_020.json" | tee "$OUT/compare_020.txt"

step "compare_slurm, 100 jobs x $REPEAT_100"
$BENCH_PY benchmarks/compare_slurm.py --jobs 100 --repeat "$REPEAT_100" \
    --json "$OUT/compare_100.json" | tee "$OUT/compare_100.txt"

step "group_vs_separate x 3"
$OURS_PY benchmarks/group_vs_separate.py --repeat 3 \
    --json "$OUT/group.json" | tee "$OUT/group.txt"

step "runner_overhead"
$OURS_PY benchmarks/runner_overhead.py --runs 20 --cluster-runs 7 \
    --json "$OUT/runner.json" | tee "$OUT/runner.txt"

step "runtime_access (needs kindslurm ci-setup --podman-service)"
$OURS_PY benchmarks/runtime_access.py --runs 7 \
    --json "$OUT/access.json" | tee "$OUT/access.txt"

step "status_cost"
$BENCH_PY benchmarks/status_cost.py --rounds 20 \
    --json "$OUT/status.json" | tee "$OUT/status.txt"

step "RESULTS.md and walltime.png"
$BENCH_PY benchmarks/plot.py
echo "total: $(( ($(date +%s) - started) / 60 )) min"
