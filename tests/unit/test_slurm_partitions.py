"""Slurm times and partition limits: the sinfo argv and parser, from recorded output."""

from pathlib import Path

import pytest

from snakemake_executor_plugin_kindslurm.slurm.partitions import (
    Partition,
    build_sinfo_partitions_argv,
    job_time_limit,
    parse_sinfo_partitions,
    parse_slurm_time,
)

DATA = Path(__file__).parent.parent / "data" / "slurm"


def test_sinfo_argv() -> None:
    assert build_sinfo_partitions_argv("/usr/bin/sinfo") == [
        "/usr/bin/sinfo", "--noheader", "--format=%P|%l|%L",
    ]  # fmt: skip


def test_recorded_partitions() -> None:
    partitions = parse_sinfo_partitions((DATA / "sinfo_recorded_partitions.txt").read_text())
    assert partitions == {
        "debug": Partition("debug", True, None, None),
        "short": Partition("short", False, 600, 120),
    }
    # A job without --time gets DefaultTime where there is one, else MaxTime.
    assert job_time_limit(partitions, "short") == 120
    assert job_time_limit(partitions, None) is None  # debug: unlimited
    assert job_time_limit(partitions, "debug") is None
    assert job_time_limit(partitions, "nope") is None  # sbatch will say so itself


def test_max_time_applies_without_a_default_time() -> None:
    partitions = parse_sinfo_partitions("gpu*|2-00:00:00|n/a\nquick|5:00|n/a\n")
    assert job_time_limit(partitions, None) == 2 * 86400
    assert job_time_limit(partitions, "quick") == 300


def test_odd_lines_are_skipped_and_repeats_keep_the_first() -> None:
    text = "\nnot sinfo at all\n|1:00|n/a\nq|1:00|n/a\nq|9:00|n/a\nr|a|b|c\n"
    assert parse_sinfo_partitions(text) == {"q": Partition("q", False, 60, None)}
    assert job_time_limit(parse_sinfo_partitions(""), None) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5", 300), ("0:30", 30), ("10:00", 600), ("1:00:00", 3600), ("2-3", 183600),
     ("2-3:04", 183840), ("1-00:00:00", 86400), (" 3:00\n", 180), ("UNLIMITED", None),
     ("infinite", None), ("n/a", None), ("NOT_SET", None), ("", None), ("1h", None)],
)  # fmt: skip
def test_parse_slurm_time(text: str, seconds: int | None) -> None:
    assert parse_slurm_time(text) == seconds
