#!/usr/bin/env python3
"""What a shared Podman service costs a user's job, side by side. Not a test.

The same runner, spec and stand-in cluster, two ways of reaching Podman,
interleaved run by run so that machine noise hits both alike:

- local: root with the local (rootful) Podman, as the rest of the suite;
- service: a regular user (kstest, a member of the service's group) with
  CONTAINER_HOST pointing at the rootful Podman service that
  `kindslurm ci-setup --podman-service` starts.

Per phase (preflight, create, workload, delete, and the runner's own rest)
the medians and the ratio service/local are printed. Preflight is where the
two differ by design: through a service it asks `podman info` (rootless?)
instead of `podman version`.

    .venv/bin/python benchmarks/runtime_access.py --runs 7 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import OURS_PYTHON, ROOT, STANDIN_IMAGE, machine, median, write_json
from runner_overhead import parse_phases

RUNNER = [str(OURS_PYTHON), "-m", "snakemake_executor_plugin_kindslurm.runner"]
USER = "kstest"


def service_url() -> str:
    script = ROOT / "snakemake_executor_plugin_kindslurm" / "testbed" / "kind.sh"
    proc = subprocess.run(["bash", str(script), "service-url"], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return proc.stdout.strip()


def one_run(argv: list[str], cwd: Path) -> dict[str, float]:
    start = time.time()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    total = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}):\n{proc.stderr}")
    phases = parse_phases(proc.stderr)
    return {**phases, "total": total, "rest": total - sum(phases.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the local contender is root's Podman)")
    url = service_url()
    entry = pwd.getpwnam(USER)
    started = machine()
    base = Path(tempfile.mkdtemp(prefix="kindslurm-bench-access-"))
    base.chmod(0o755)
    work = {"local": base / "local", "service": base / "service"}
    for path in work.values():
        path.mkdir()
    os.chown(work["service"], entry.pw_uid, entry.pw_gid)

    def argv(how: str) -> list[str]:
        spec = json.dumps({"cluster": True, "workdir": str(work[how]),
                           "node_image": STANDIN_IMAGE})  # fmt: skip
        runner = [*RUNNER, "--spec", spec, "--", "true"]
        # env: every -u before the first assignment
        env = ["env", "-u", "XDG_RUNTIME_DIR", "-u", "CONTAINER_HOST", f"TMPDIR={work[how]}",
               "KIND_EXPERIMENTAL_PROVIDER=podman", f"PYTHONPATH={ROOT}"]  # fmt: skip
        if how == "local":
            return [*env, *runner]
        return ["runuser", "-u", USER, "--", *env, f"HOME={entry.pw_dir}",
                f"CONTAINER_HOST={url}", *runner]  # fmt: skip

    rows: dict[str, list[dict[str, float]]] = {"local": [], "service": []}
    try:
        for index in range(args.runs):
            for how in ("local", "service") if index % 2 == 0 else ("service", "local"):
                rows[how].append(one_run(argv(how), work[how]))
            print(f"  run {index + 1}: local {rows['local'][-1]['total']:.2f} s, "
                  f"service {rows['service'][-1]['total']:.2f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
            for how, path in work.items():
                left = [p.name for p in path.iterdir() if p.name.startswith("kindslurm-")]
                if left:
                    raise SystemExit(f"the {how} runner left {left}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    keys = list(rows["local"][0])
    med = {how: {k: median([r[k] for r in rows[how]]) for k in keys} for how in rows}
    result: dict[str, Any] = {
        "benchmark": "runtime_access",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": started,
        "user": USER,
        "service": url,
        "median": med,
        "ratio_service_over_local": {
            k: med["service"][k] / med["local"][k] if med["local"][k] > 0 else None for k in keys
        },
        "raw": rows,
    }
    write_json(args.json, result)
    print(f"\nmedians of {args.runs} interleaved runs (seconds)")
    print(f"  {'phase':<10}{'local':>8}{'service':>9}{'ratio':>7}")
    for k in keys:
        ratio = result["ratio_service_over_local"][k]
        shown = f"{ratio:7.2f}" if ratio is not None else "      -"
        print(f"  {k:<10}{med['local'][k]:8.3f}{med['service'][k]:9.3f}{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
