"""Snakemake script of rule `report` (a plain Slurm job): results/report.md.

Besides the word counts it tabulates where every step ran: the Slurm job and
the Kind cluster (`none` for plain jobs), from the work/where/*.tsv records the
steps wrote, which shows which steps got a cluster and which shared one.
"""

import csv
import os


def read_tsv(path: str) -> list[list[str]]:
    with open(path, newline="") as handle:
        return [row for row in csv.reader(handle, delimiter="\t") if row]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def main(inputs, output: str, top: int) -> None:  # type: ignore[no-untyped-def]
    samples = read_tsv(inputs.sheet)
    top_words = read_tsv(inputs.top)
    where = [row for path in inputs.where for row in read_tsv(path)]
    where.append(
        ["report", os.environ.get("SLURM_JOB_ID", "-"), os.environ.get("K8S_CLUSTER_NAME", "none")]
    )
    clusters: dict[str, list[str]] = {}
    for step, _job, cluster in where:
        if cluster != "none":
            clusters.setdefault(cluster, []).append(step)

    lines = ["# mixed-pipeline report", "", "## Samples", ""]
    lines += table(["sample", "words", "distinct words"], samples)
    lines += ["", f"## Top {top} words of all samples", ""]
    lines += table(["word", "count", "% of all words"], top_words)
    lines += ["", "## Where each step ran", ""]
    lines += table(["step", "Slurm job", "Kind cluster"], where)
    lines += ["", f"{len(clusters)} Kind cluster(s) were created:", ""]
    lines += [f"- {name}: {', '.join(steps)}" for name, steps in sorted(clusters.items())]
    with open(output, "w") as handle:
        handle.write("\n".join(lines) + "\n")


main(snakemake.input, snakemake.output[0], int(snakemake.params.top))  # type: ignore[name-defined]  # noqa: F821
