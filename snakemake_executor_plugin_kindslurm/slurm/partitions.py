"""Slurm times and partition time limits: the sinfo argv and its parser. Pure.

A job submitted without --time gets its partition's DefaultTime, or its MaxTime
when the partition has no default. The time-limit warning has to fit that limit
just as it fits an explicit one (see submit.time_limit_warning).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_slurm_time(text: str) -> int | None:
    """Seconds in a Slurm time (`--time`, `squeue %L`, `sinfo %l`), None for
    UNLIMITED, infinite, n/a & co.

    Formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
    """
    match = _TIME.match(text.strip())
    if not match:
        return None
    days, first, second, third = match.groups()
    if days is not None:
        hours, minutes, seconds = int(first), int(second or 0), int(third or 0)
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if third is not None:
        return (int(first) * 60 + int(second or 0)) * 60 + int(third)
    if second is not None:
        return int(first) * 60 + int(second)
    return int(first) * 60


@dataclass(frozen=True)
class Partition:
    name: str
    default: bool  # the partition a job without --partition goes to
    max_time: int | None  # seconds; None: no limit
    default_time: int | None  # seconds; None: MaxTime applies

    @property
    def job_time_limit(self) -> int | None:
        """The limit of a job submitted here without --time (None: unlimited)."""
        return self.default_time if self.default_time is not None else self.max_time


def build_sinfo_partitions_argv(sinfo: str = "sinfo") -> list[str]:
    # %P: name (`*` marks the default), %l: MaxTime, %L: DefaultTime.
    return [sinfo, "--noheader", "--format=%P|%l|%L"]


def parse_sinfo_partitions(text: str) -> dict[str, Partition]:
    """sinfo's answer by partition name; lines that are not `name|limit|default`
    are skipped (sinfo repeats a partition once per group of node states)."""
    partitions: dict[str, Partition] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 3 or not fields[0].strip():
            continue
        raw, limit, default_time = (f.strip() for f in fields)
        name = raw.rstrip("*")
        partitions.setdefault(
            name,
            Partition(name, raw.endswith("*"), parse_slurm_time(limit),
                      parse_slurm_time(default_time)),
        )  # fmt: skip
    return partitions


def job_time_limit(partitions: Mapping[str, Partition], partition: str | None) -> int | None:
    """Seconds a job without --time may run in `partition` (None: the default
    partition); None when unlimited or not known."""
    if partition is None:
        chosen = next((p for p in partitions.values() if p.default), None)
    else:
        chosen = partitions.get(partition)
    return None if chosen is None else chosen.job_time_limit
