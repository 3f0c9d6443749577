#!/usr/bin/env python3
"""Turn benchmarks/results/*.json into the tables of RESULTS.md and walltime.png.

The measured tables live between `<!-- generated:begin -->` and
`<!-- generated:end -->` in RESULTS.md; everything outside the markers (the
reading of the numbers) is kept as written. Needs matplotlib (bench venv).

    .venv-bench/bin/python benchmarks/plot.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- generated:begin -->", "<!-- generated:end -->"
CONTENDERS = ("local", "peer-default", "peer-tuned", "kindslurm")
TOOLS = ("sbatch", "srun", "sacct", "squeue", "scontrol", "scancel", "sinfo", "sacctmgr", "sshare")


def load(results: Path, prefix: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(results.glob(f"{prefix}*.json"))]


def ratio(value: float, ours: float) -> str:
    return f"{value / ours:.2f}" if ours else "-"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


Measured = dict[int, dict[str, tuple[dict[str, Any], dict[str, Any]]]]


def merge_compare(runs: list[dict[str, Any]]) -> Measured:
    """size -> contender -> (its median and runs, the result file it came from).

    Files are read in name order and a later file replaces a contender it also
    measured (e.g. a re-run of some contenders after a change to one of them).
    """
    merged: Measured = {}
    for data in runs:
        for size, per in data["results"].items():
            for name, values in per.items():
                merged.setdefault(int(size), {})[name] = (values, data)
    return merged


def compare_section(runs: list[dict[str, Any]]) -> list[str]:
    out = ["### N independent trivial jobs (`compare_slurm.py`)", ""]
    merged = merge_compare(runs)
    for size in sorted(merged):
        per = {name: merged[size][name] for name in CONTENDERS if name in merged[size]}
        medians = {name: values["median"] for name, (values, _) in per.items()}
        ours = medians.get("kindslurm", {})
        tools = [t for t in TOOLS if any(m.get(t) for m in medians.values())]
        sources = {id(data): data for _, data in per.values()}
        out.append(f"**{size} jobs**, medians; measured by:")
        out.append("")
        for data in sources.values():
            names = ", ".join(n for n, (_, d) in per.items() if d is data)
            out.append(
                f"- {names}: `{data['command']}` (started {data['machine']['date']}, "
                f"{data['repeat']} run(s) each, contenders interleaved)"
            )
        out.append("")
        header = ["contender", "runs", "wall s", "wall ÷ ours", "CPU s", "CPU ÷ ours", "Slurm jobs"]
        header += [f"`{t}` calls" for t in tools]
        rows = []
        for name, m in medians.items():
            row = [
                name,
                str(len(per[name][0]["runs"])),
                f"{m['wall']:.1f}",
                ratio(m["wall"], ours.get("wall", 0)),
                f"{m['cpu']:.1f}",
                ratio(m["cpu"], ours.get("cpu", 0)),
                f"{m.get('slurm_jobs', 0):.0f}",
            ]
            row += [f"{m.get(t, 0):.0f}" for t in tools]
            rows.append(row)
        out += table(header, rows)
        walls = {
            name: ", ".join(f"{r['wall']:.1f}" for r in values["runs"])
            for name, (values, _) in per.items()
        }
        out.append("")
        out.append("Every run's wall time (s): " + "; ".join(f"{n} {w}" for n, w in walls.items()))
        out.append("")
    return out


def group_section(data: dict[str, Any]) -> list[str]:
    med = {m: data["results"][m]["median"] for m in ("separate", "group")}
    out = [
        f"### {data['steps']} Kubernetes steps: separate jobs vs one group job "
        "(`group_vs_separate.py`)",
        "",
        f"Median of {data['repeat']} runs; `{data['command']}` ({data['machine']['date']})",
        "",
    ]
    header = [
        "mode",
        "wall s",
        "wall ÷ group",
        "Slurm jobs",
        "cluster creations",
        "distinct K8S_CLUSTER_NAME",
        "time in kind create s",
    ]
    rows = [
        [
            mode,
            f"{m['wall']:.1f}",
            ratio(m["wall"], med["group"]["wall"]),
            f"{m['slurm_jobs']:.0f}",
            f"{m['cluster_creations']:.0f}",
            f"{m['distinct_clusters_seen']:.0f}",
            f"{m['create_seconds_total']:.1f}",
        ]
        for mode, m in med.items()
    ]
    out += table(header, rows)
    runs = "; ".join(
        f"{mode} " + ", ".join(f"{r['wall']:.1f}" for r in data["results"][mode]["runs"])
        for mode in med
    )
    return [*out, "", f"Every run's wall time (s): {runs}", ""]


def runner_section(data: dict[str, Any]) -> list[str]:
    plain = data["no_cluster"]
    out = [
        "### The runner's own overhead (`runner_overhead.py`)",
        "",
        f"`{data['command']}` ({data['machine']['date']})",
        "",
        f"Without a cluster (kind_cluster=0), median of {plain['runs']} runs:",
        "",
    ]
    rows = [[name, f"{value:.3f}"] for name, value in plain["wall_median"].items()]
    rows += [
        ["runner overhead (runner -- true minus true)", f"{plain['overhead_vs_true']:.3f}"],
        ["of which: process start -> workload start", f"{plain['start_to_workload']:.3f}"],
        ["of which: workload end -> exit", f"{plain['workload_to_exit']:.3f}"],
        ["runner minus a bare `python -c pass`", f"{plain['overhead_vs_python']:.3f}"],
    ]
    out += table(["what", "seconds"], rows)
    cluster = data.get("cluster")
    if cluster:
        med = cluster["median"]
        out += [
            "",
            f"With the stand-in cluster (workload `true`), median of {cluster['runs']} "
            "runs, from the runner's phase log lines:",
            "",
        ]
        names = ["preflight", "create", "workload", "delete", "rest", "total"]
        labels = {"rest": "rest (runner overhead)", "total": "total wall"}
        out += table(["phase", "seconds"], [[labels.get(n, n), f"{med[n]:.3f}"] for n in names])
    return [*out, ""]


def access_section(data: dict[str, Any]) -> list[str]:
    med, ratio = data["median"], data["ratio_service_over_local"]
    runs = len(data["raw"]["local"])
    out = [
        "### A user's job through a shared Podman service (`runtime_access.py`)",
        "",
        f"`{data['command']}` ({data['machine']['date']}); median of {runs} interleaved "
        f"runs of the runner with the stand-in cluster: root on the local Podman vs "
        f"{data['user']} through `CONTAINER_HOST={data['service']}`.",
        "",
    ]
    names = ["preflight", "create", "workload", "delete", "rest", "total"]
    rows = [
        [n, f"{med['local'][n]:.3f}", f"{med['service'][n]:.3f}",
         f"{ratio[n]:.2f}" if ratio[n] is not None else "-"]
        for n in names
    ]  # fmt: skip
    out += table(["phase", "local (root) s", "service (user) s", "service ÷ local"], rows)
    return [*out, ""]


def status_section(data: dict[str, Any]) -> list[str]:
    out = [
        "### Status query cost per round (`status_cost.py`)",
        "",
        f"Median of {data['rounds']} rounds; `{data['command']}` ({data['machine']['date']})",
        "",
    ]

    def calls(counts: dict[str, float]) -> str:
        return ", ".join(f"{n:g} {tool}" for tool, n in counts.items()) or "-"

    header = [
        "jobs",
        "answer from",
        "ours s/round",
        "ours parse s",
        "ours processes/round",
        "peer s/round",
        "peer processes/round",
        "peer ÷ ours",
    ]
    rows = []
    for size, r in data["results"].items():
        ours, peer = r["ours"], r["peer"]
        rows.append(
            [
                size,
                r["source"],
                f"{ours['round_s']:.4f}",
                f"{ours['parse_s']:.6f}",
                calls(ours["calls_per_round"]),
                f"{peer['round_s']:.4f}",
                calls(peer["calls_per_round"]),
                ratio(peer["round_s"], ours["round_s"]),
            ]
        )
    out += table(header, rows)
    real = data["results"]["1000"].get("real_sacct_all_allocations_today")
    if real:
        out += [
            "",
            f"One real `sacct` over all {real['rows']} allocations since midnight (no "
            f"name filter): {real['round_s']:.3f} s per call, parse {real['parse_s']:.5f} s.",
        ]
    return [*out, ""]


def plot(runs: list[dict[str, Any]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: dict[str, dict[int, float]] = {}
    for size, per in merge_compare(runs).items():
        for name, (values, _) in per.items():
            points.setdefault(name, {})[size] = values["median"]["wall"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in CONTENDERS:
        if name in points:
            xs = sorted(points[name])
            ax.plot(xs, [points[name][x] for x in xs], marker="o", label=name)
    ax.set_xlabel("independent trivial jobs")
    ax.set_ylabel("wall time, s (median of the runs made)")
    ax.set_title("Wall time vs job count, 2-core single-node Slurm")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--markdown", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--png", type=Path, default=HERE / "walltime.png")
    args = parser.parse_args()
    compare = load(args.results, "compare_")
    lines: list[str] = []
    if compare:
        lines += compare_section(compare)
        plot(compare, args.png)
        lines += [f"![wall time vs job count]({args.png.name})", ""]
    for prefix, section in (
        ("group", group_section),
        ("runner", runner_section),
        ("access", access_section),
        ("status", status_section),
    ):
        for data in load(args.results, prefix):
            lines += section(data)
    generated = "\n".join([BEGIN, "", *lines, END])
    text = (
        args.markdown.read_text() if args.markdown.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    )
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    args.markdown.write_text(head + generated + tail)
    print(f"wrote {args.markdown} and {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
