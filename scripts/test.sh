#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: sets everything up
# (scripts/setup.sh), lints, runs unit and integration tests against the real
# Slurm, Podman and kind, and finally checks that nothing of ours leaked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
py="$root/.venv/bin/python"

echo "== ruff"
"$root/.venv/bin/ruff" check .
echo "== mypy (strict, from pyproject.toml)"
"$root/.venv/bin/mypy" snakemake_executor_plugin_kindslurm
echo "== pytest"
# Missing prerequisites fail instead of skipping: CI must not go green by skipping.
KINDSLURM_REQUIRE_INTEGRATION=1 "$py" -m pytest -p no:cacheprovider "$@"

echo "== leak check"
leaked=$(podman ps -a --filter label=io.x-k8s.kind.cluster --format '{{.Names}}')
if [ -n "$leaked" ]; then
  echo "Kind node containers left behind: $leaked" >&2
  exit 1
fi
left=$(squeue --noheader --format=%i 2>/dev/null | wc -l)
if [ "$left" != 0 ]; then
  echo "Slurm jobs left in the queue:" >&2
  squeue >&2
  exit 1
fi
echo "no leaked clusters or jobs"
