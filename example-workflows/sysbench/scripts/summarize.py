"""Snakemake script of rule `summary`: one TSV row per sysbench CPU report."""

import re
from pathlib import Path

FIELDS = {
    "threads": r"Number of threads:\s*(\d+)",
    "events_per_second": r"events per second:\s*([\d.]+)",
    "total_events": r"total number of events:\s*(\d+)",
    "total_time_s": r"total time:\s*([\d.]+)s",
}


def parse_report(text: str, source: str) -> dict[str, str]:
    """The FIELDS of one `sysbench cpu run` report; names the file when one is missing."""
    row = {}
    for name, pattern in FIELDS.items():
        match = re.search(pattern, text)
        if match is None:
            raise ValueError(f"{source}: no {name!r} in the sysbench report ({pattern})")
        row[name] = match.group(1)
    return row


def main(reports: list[str], output: str) -> None:
    rows = [parse_report(Path(path).read_text(), path) for path in reports]
    rows.sort(key=lambda row: int(row["threads"]))
    lines = ["\t".join(FIELDS)] + ["\t".join(row[name] for name in FIELDS) for row in rows]
    Path(output).write_text("\n".join(lines) + "\n")


main(list(snakemake.input), snakemake.output[0])  # type: ignore[name-defined]  # noqa: F821
