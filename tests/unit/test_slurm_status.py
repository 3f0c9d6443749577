"""The status parser and classifier, from recorded and constructed sacct/squeue output."""

from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from snakemake_executor_plugin_kindslurm.slurm.status import (
    JobState,
    Outcome,
    build_sacct_argv,
    build_squeue_argv,
    classify_state,
    describe_failure,
    never_starts,
    normalise_state,
    parse_sacct,
    parse_squeue,
)

DATA = Path(__file__).parent.parent / "data" / "slurm"


def read(name: str) -> str:
    return (DATA / name).read_text()


@pytest.mark.parametrize(
    ("jobid", "state", "code", "outcome"),
    [
        pytest.param("101", "COMPLETED", 0, Outcome.SUCCESS, id="completed"),
        pytest.param("102", "FAILED", 1, Outcome.FAILED, id="failed"),
        pytest.param("103", "CANCELLED", 0, Outcome.FAILED, id="cancelled-by-uid"),
        pytest.param("104", "TIMEOUT", 0, Outcome.FAILED, id="timeout"),
        pytest.param("105", "OUT_OF_MEMORY", 0, Outcome.FAILED, id="oom"),
        pytest.param("106", "NODE_FAIL", 0, Outcome.FAILED, id="node-fail"),
        pytest.param("107", "PREEMPTED", 0, Outcome.FAILED, id="preempted"),
        pytest.param("108", "BOOT_FAIL", 0, Outcome.FAILED, id="boot-fail"),
        pytest.param("109", "DEADLINE", 0, Outcome.FAILED, id="deadline"),
        pytest.param("110", "REQUEUED", 0, Outcome.RUNNING, id="requeued"),
        pytest.param("111", "PENDING", 0, Outcome.RUNNING, id="pending"),
        pytest.param("112", "RUNNING", 0, Outcome.RUNNING, id="running"),
        pytest.param("113", "COMPLETING", 0, Outcome.RUNNING, id="completing"),
        pytest.param("114", "SUSPENDED", 0, Outcome.RUNNING, id="suspended"),
        pytest.param("115", "FAILED", 119, Outcome.FAILED, id="cluster-create-failed"),
        pytest.param("116", "CANCELLED", 0, Outcome.FAILED, id="cancelled-plus"),
        pytest.param("120_3", "COMPLETED", 0, Outcome.SUCCESS, id="array-task"),
        pytest.param("121", "FAILED", 0, Outcome.FAILED, id="segfault"),
    ],
)
def test_every_state_in_constructed_answer(jobid, state, code, outcome):
    states = parse_sacct(read("sacct_all_states.txt"))
    assert states[jobid].state == state
    assert states[jobid].exit_code == code
    assert states[jobid].outcome is outcome


def test_unknown_state_is_kept_but_not_classified():
    states = parse_sacct(read("sacct_all_states.txt"))
    assert states["117"].state == "HYPOTHETICAL_FUTURE_STATE"
    assert states["117"].outcome is None


def test_garbage_blank_short_and_step_lines_are_skipped():
    states = parse_sacct(read("sacct_all_states.txt"))
    assert "118" not in states  # line without an exit code field
    assert "abc" not in states
    assert "119.batch" not in states and "119" not in states
    assert len(states) == 19


def test_recorded_terminal_answer_from_real_slurm():
    states = parse_sacct(read("sacct_recorded_terminal.txt"))
    assert {k: (v.state, v.exit_code, v.signal) for k, v in states.items()} == {
        "4": ("COMPLETED", 0, 0),
        "5": ("FAILED", 3, 0),
        "6": ("CANCELLED", 0, 0),
        "7": ("OUT_OF_MEMORY", 0, 125),
        "8": ("FAILED", 0, 11),
    }
    assert states["6"].raw_state == "CANCELLED by 0"


def test_recorded_active_answer_from_real_slurm():
    states = parse_sacct(read("sacct_recorded_active.txt"))
    assert [s.outcome for s in states.values()] == [Outcome.RUNNING, Outcome.RUNNING]


def test_requeued_job_last_line_wins():
    states = parse_sacct("7|REQUEUED|0:0\n7|RUNNING|0:0\n")
    assert states["7"].state == "RUNNING"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CANCELLED by 0", "CANCELLED"),
        ("CANCELLED+", "CANCELLED"),
        ("  running ", "RUNNING"),
        ("", ""),
    ],
)
def test_normalise_state(raw, expected):
    assert normalise_state(raw) == expected


def test_completed_with_nonzero_code_is_failure():
    assert classify_state("COMPLETED", 2) is Outcome.FAILED


def test_recorded_squeue_answer():
    states = parse_squeue(read("squeue_recorded.txt"))
    assert {k: s.outcome for k, s in states.items()} == {
        "13": Outcome.SUCCESS,
        "12": Outcome.RUNNING,
        "11": Outcome.RUNNING,
    }
    assert states["12"].reason == "Resources"
    assert states["13"].exit_code is None


def test_sacct_argv_is_one_query_for_the_whole_run():
    argv = build_sacct_argv("sacct", "kindslurm-abc", datetime(2026, 1, 2, 3, 4, 5))
    assert argv == [
        "sacct",
        "--allocations",
        "--parsable2",
        "--noheader",
        "--format=JobIdRaw,State,ExitCode,Reason",
        "--name=kindslurm-abc",
        "--starttime=2026-01-02T03:04:05",
        "--endtime=now",
    ]


def test_squeue_argv():
    assert build_squeue_argv("squeue", "run", "alice") == [
        "squeue",
        "--noheader",
        "--states=all",
        "--name=run",
        "--user=alice",
        "--format=%i|%T|%r",
    ]


def test_failure_message_names_cluster_creation():
    msg = describe_failure(JobState("9", "FAILED", "FAILED", 119, 0), "/logs/9.log")
    assert "cluster creation failed" in msg
    assert "exit code 119:0" in msg and "/logs/9.log" in msg


def test_failure_message_for_timeout_and_cancel():
    assert "time limit" in describe_failure(JobState("9", "TIMEOUT", "TIMEOUT", 0, 0), None)
    msg = describe_failure(JobState("9", "CANCELLED", "CANCELLED by 0", 0, 0), "x.log")
    assert "CANCELLED by 0" in msg and "cancelled" in msg


def test_parse_1000_jobs_is_linear_and_complete():
    text = "".join(f"{i}|{'RUNNING' if i % 3 else 'COMPLETED'}|0:0\n" for i in range(1000))
    states = parse_sacct(text)
    assert len(states) == 1000
    assert sum(s.outcome is Outcome.SUCCESS for s in states.values()) == 334


ACTIVE_WORDS = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED"}


def test_1000_job_answer_every_job_classified():
    """A 1,000-job sacct answer (see tests/data/slurm/README.md). The expected
    counts come from the file text with plain string operations, not the parser."""
    text = read("sacct_1000_jobs.txt")
    lines = text.splitlines()
    assert len(lines) == 1000
    rows = [line.split("|") for line in lines]
    assert all(len(row) == 3 for row in rows)
    words = [state.split(" ")[0] for _, state, _ in rows]
    expected = {
        Outcome.RUNNING: sum(word in ACTIVE_WORDS for word in words),
        Outcome.SUCCESS: sum(state == "COMPLETED" and code == "0:0" for _, state, code in rows),
    }
    expected[Outcome.FAILED] = len(rows) - expected[Outcome.RUNNING] - expected[Outcome.SUCCESS]
    # the mix this file exists for: every kind of outcome, and the two-word cancel
    assert all(count > 0 for count in expected.values())
    assert "CANCELLED by 0" in {state for _, state, _ in rows}

    states = parse_sacct(text)

    assert len(states) == 1000
    outcomes = Counter(s.outcome for s in states.values())
    assert outcomes == expected
    assert Counter(s.state for s in states.values()) == Counter(words)
    for jobid, raw_state, code in rows:
        job = states[jobid]
        assert job.raw_state == raw_state
        assert f"{job.exit_code}:{job.signal}" == code


def test_sacct_reason_field_is_read_and_none_means_no_reason():
    states = parse_sacct("7|PENDING|0:0|PartitionConfig\n8|RUNNING|0:0|None\n9|COMPLETED|0:0\n")
    assert states["7"].reason == "PartitionConfig"
    assert states["8"].reason == ""
    assert states["9"].reason == ""
    assert parse_squeue("8|RUNNING|None\n")["8"].reason == ""


@pytest.mark.parametrize(
    ("state", "reason", "fails", "words"),
    [
        ("PENDING", "PartitionConfig", True, "--cores"),
        ("PENDING", "PartitionTimeLimit", True, "runtime"),
        ("PENDING", "PartitionNodeLimit", True, "nodes"),
        ("PENDING", "BadConstraints", True, "constraint"),
        ("PENDING", "InvalidAccount", True, "slurm_account"),
        ("PENDING", "InvalidQOS", True, "QOS"),
        ("PENDING", "AssocMaxCpuPerJobLimit", True, "per-job limit"),
        ("PENDING", "QOSMaxWallDurationPerJobLimit", True, "per-job limit"),
        ("PENDING", "QOSMaxMemoryPerJob", True, "per-job limit"),
        # reasons that waiting cures
        ("PENDING", "Resources", False, ""),
        ("PENDING", "Priority", False, ""),
        ("PENDING", "ReqNodeNotAvail", False, ""),
        ("PENDING", "AssocMaxJobsLimit", False, ""),
        ("PENDING", "QOSMaxCpuPerUserLimit", False, ""),
        ("PENDING", "JobHeldUser", False, ""),
        ("PENDING", "", False, ""),
        # only pending jobs
        ("RUNNING", "PartitionConfig", False, ""),
        ("CANCELLED", "PartitionConfig", False, ""),
    ],
)
def test_never_starts(state, reason, fails, words):
    verdict = never_starts(state, reason)
    assert (verdict is not None) is fails
    if verdict is not None:
        why, fix = verdict
        assert why and fix
        assert words in why + " " + fix


def test_recorded_pending_reasons_from_real_slurm():
    states = parse_sacct(read("sacct_recorded_reasons.txt"))
    assert {k: (s.state, s.reason) for k, s in states.items()} == {
        "1947": ("PENDING", "PartitionConfig"),
        "1948": ("PENDING", "PartitionTimeLimit"),
        "1949": ("RUNNING", ""),
        "1950": ("COMPLETED", ""),
    }
    never = {k for k, s in states.items() if s.never_starts is not None}
    assert never == {"1947", "1948"}


def test_squeue_by_id_and_what_counts_as_an_answer():
    from snakemake_executor_plugin_kindslurm.slurm.status import (
        build_squeue_jobs_argv,
        squeue_answered,
    )

    assert build_squeue_jobs_argv("squeue", ["7", "8"]) == [
        "squeue", "--noheader", "--states=all", "--jobs=7,8", "--format=%i|%T|%r",
    ]  # fmt: skip
    assert squeue_answered(0, "")
    assert squeue_answered(1, "slurm_load_jobs error: Invalid job id specified")
    assert not squeue_answered(1, "slurm_load_jobs error: Unable to contact slurm controller")
    held = parse_squeue("2170|PENDING|JobHeldUser\n2171|PENDING|BeginTime\n")
    assert {k: (s.outcome, s.never_starts) for k, s in held.items()} == {
        "2170": (Outcome.RUNNING, None),
        "2171": (Outcome.RUNNING, None),
    }
