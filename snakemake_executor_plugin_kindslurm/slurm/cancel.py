"""scancel argv: one call for every job to cancel."""

from __future__ import annotations

from collections.abc import Iterable


def build_scancel_argv(scancel: str, jobids: Iterable[str]) -> list[str]:
    ids = sorted(set(jobids), key=lambda j: (len(j), j))
    if not ids:
        raise ValueError("no job ids to cancel")
    return [scancel, *ids]
