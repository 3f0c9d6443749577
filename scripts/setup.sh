#!/usr/bin/env bash
# Brings a Debian/Ubuntu machine (as root) to the state the tests and the demo
# need: a project venv with the plugin, then, through the plugin's own
# `kindslurm ci-setup` (the same code users run in their CI), a running
# single-node Slurm with accounting, Podman + the real kind binary, and the
# stand-in Kind node image. Idempotent: a second run only checks and starts
# what is not running.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "scripts/setup.sh must run as root: it installs packages and starts Slurm daemons" >&2
  exit 2
fi

if ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
  log "python3-venv"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv python3-pip
fi

# The venv is built from the system Python (not a per-user one such as pyenv
# under /root, which other users cannot read) so the non-root test users can
# run the same Snakemake and plugin.
if [ ! -x "$venv/bin/python" ]; then
  log "venv $venv"
  /usr/bin/python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import snakemake_executor_plugin_kindslurm, pytest, snakemake' 2>/dev/null \
   || [ "$root/pyproject.toml" -nt "$venv/.installed" ]; then
  log "installing the plugin and its test dependencies into the venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  # compat mode: a plain path entry, so Snakemake's pkgutil-based plugin discovery finds it
  "$venv/bin/python" -m pip install -q -e "$root[test]" --config-settings editable_mode=compat
  touch "$venv/.installed"
fi
chmod -R a+rX "$venv"

log "kindslurm ci-setup: Slurm, Podman, kind, stand-in node image"
"$venv/bin/kindslurm" ci-setup --user kstest --user kstest2 --standin-image --podman-service
log "ready"
