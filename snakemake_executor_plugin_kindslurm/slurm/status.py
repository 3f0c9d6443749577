"""Query job states with one sacct (or squeue) call per round, and classify them.

Build -> run -> parse: `build_*_argv` and `parse_*` are pure and tested from
recorded output in tests/data/slurm/; the executor runs the argv through
process.run.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ..spec import EXIT_CODE_MEANINGS


class Outcome(enum.Enum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"


# Slurm's states (sacct and squeue spell them the same way).
ACTIVE_STATES = frozenset(
    {
        "PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "REQUEUED",
        "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
        "RESV_DEL_HOLD", "SPECIAL_EXIT_HOLD",
    }
)  # fmt: skip
SUCCESS_STATES = frozenset({"COMPLETED"})
FAILED_STATES = frozenset(
    {
        "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
        "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT",
    }
)  # fmt: skip

STATE_EXPLANATIONS = {
    "FAILED": "the job exited with a non-zero code",
    "CANCELLED": "the job was cancelled (scancel or an administrator)",
    "TIMEOUT": "the job reached its time limit; raise the resource runtime",
    "OUT_OF_MEMORY": "the job exceeded its memory; raise the resource mem_mb",
    "NODE_FAIL": "the node running the job failed",
    "PREEMPTED": "the job was preempted by a higher-priority job",
    "BOOT_FAIL": "the node could not be booted for the job",
    "DEADLINE": "the job could not finish before its deadline",
    "REVOKED": "the job was revoked (federation)",
    "SPECIAL_EXIT": "the job ended with a special exit state",
}


# Pending reasons that do not go away by waiting: the job asks for something
# its partition, association or QOS can never give (only an administrator's
# change would). Slurm keeps such a job PENDING forever, so a workflow would
# hang; the executor fails it instead (see never_starts). Reason -> (why, fix).
NEVER_START_REASONS = {
    "PartitionConfig": (
        "it asks for more CPUs, GPUs or nodes than any node of its partition has",
        "lower the rule's threads / cpus_per_task (for group jobs pass --cores no larger "
        "than a node's CPUs) or choose a bigger partition with slurm_partition",
    ),
    "PartitionTimeLimit": (
        "its time limit is longer than its partition allows",
        "lower the rule's runtime or choose another partition with slurm_partition",
    ),
    "PartitionNodeLimit": (
        "the number of nodes it needs is outside its partition's limits",
        "lower the rule's nodes or choose another partition with slurm_partition",
    ),
    "BadConstraints": (
        "no node satisfies its constraints",
        "correct the rule's constraint (see `sinfo -o '%N %f'` for node features)",
    ),
    "InvalidAccount": (
        "its account is not valid for you",
        "set slurm_account to one of `sacctmgr show assoc user=$USER format=account`",
    ),
    "InvalidQOS": (
        "its QOS is not valid for you",
        "set a QOS you may use (`sacctmgr show assoc user=$USER format=qos`)",
    ),
}
# Per-job limits of an association or QOS (AssocMaxCpuPerJobLimit,
# QOSMaxWallDurationPerJobLimit, QOSMaxMemoryPerJob, ...): also permanent.
_PER_JOB_LIMIT = re.compile(r"^(Assoc|QOS)Max\w*PerJob(Limit)?$")


@dataclass(frozen=True)
class JobState:
    """One job's state as Slurm printed it."""

    jobid: str
    state: str  # first word, e.g. CANCELLED for "CANCELLED by 0"
    raw_state: str
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""

    @property
    def outcome(self) -> Outcome | None:
        """RUNNING/SUCCESS/FAILED, or None for a state this code does not know."""
        return classify_state(self.state, self.exit_code)

    @property
    def never_starts(self) -> tuple[str, str] | None:
        """(why, fix) when the job is pending for a reason waiting cannot cure."""
        return never_starts(self.state, self.reason)


def never_starts(state: str, reason: str) -> tuple[str, str] | None:
    """(why, fix) for a PENDING job whose reason means it will never start. Pure."""
    if state != "PENDING":
        return None
    if reason in NEVER_START_REASONS:
        return NEVER_START_REASONS[reason]
    if _PER_JOB_LIMIT.match(reason):
        return (
            f"it exceeds a per-job limit of your association or QOS ({reason})",
            "ask for less (threads, mem_mb, runtime, nodes) or ask the administrators "
            "about the limit (`sacctmgr show qos`)",
        )
    return None


def normalise_state(raw: str) -> str:
    """`CANCELLED by 1000` -> `CANCELLED`; `CANCELLED+` -> `CANCELLED`."""
    words = raw.strip().split()
    if not words:
        return ""
    return words[0].rstrip("+").upper()


def classify_state(state: str, exit_code: int | None = None) -> Outcome | None:
    if state in ACTIVE_STATES:
        return Outcome.RUNNING
    if state in SUCCESS_STATES:
        return Outcome.SUCCESS if not exit_code else Outcome.FAILED
    if state in FAILED_STATES:
        return Outcome.FAILED
    return None


def _format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def build_sacct_argv(sacct: str, job_name: str, since: datetime) -> list[str]:
    """One query for every job of the run: filtered by the run's job name and a
    start-time window (without -S sacct only shows jobs since midnight)."""
    return [
        sacct,
        "--allocations",
        "--parsable2",
        "--noheader",
        "--format=JobIdRaw,State,ExitCode,Reason",
        f"--name={job_name}",
        f"--starttime={_format_time(since)}",
        "--endtime=now",
    ]


def build_squeue_argv(squeue: str, job_name: str, user: str) -> list[str]:
    """squeue fallback: all states, so jobs that just ended are still listed
    (for MinJobAge seconds)."""
    return [
        squeue,
        "--noheader",
        "--states=all",
        f"--name={job_name}",
        f"--user={user}",
        "--format=%i|%T|%r",
    ]


def build_squeue_jobs_argv(squeue: str, job_ids: Iterable[str]) -> list[str]:
    """squeue for given job ids, whatever their state: it still lists jobs sacct
    does not (held, or not yet eligible, or accounting lagging)."""
    return [
        squeue,
        "--noheader",
        "--states=all",
        f"--jobs={','.join(job_ids)}",
        "--format=%i|%T|%r",
    ]


def squeue_answered(returncode: int, output: str) -> bool:
    """squeue exits 1 for a single id it does not know: that is an answer too."""
    return returncode == 0 or "invalid job id" in output.lower()


_EXIT = re.compile(r"^(\d+):(\d+)$")
_JOBID = re.compile(r"^\d+(?:_\d+)?$")


def _parse_exit(text: str) -> tuple[int | None, int | None]:
    match = _EXIT.match(text.strip())
    if not match:
        return None, None
    return int(match.group(1)), int(match.group(2))


def parse_sacct(text: str) -> dict[str, JobState]:
    """Parse `sacct --parsable2 --noheader --format=JobIdRaw,State,ExitCode[,Reason]`.

    Blank and malformed lines are skipped; job steps (`123.batch`) are ignored;
    for a job listed more than once (requeue) the last line wins. Reason
    "None" (Slurm's word for no reason) reads as "".
    """
    states: dict[str, JobState] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3:
            continue
        jobid, raw_state, exit_text = fields[0].strip(), fields[1], fields[2]
        if not _JOBID.match(jobid):
            continue
        state = normalise_state(raw_state)
        if not state:
            continue
        code, sig = _parse_exit(exit_text)
        reason = fields[3].strip() if len(fields) > 3 else ""
        reason = "" if reason == "None" else reason
        states[jobid] = JobState(jobid, state, raw_state.strip(), code, sig, reason)
    return states


def parse_squeue(text: str) -> dict[str, JobState]:
    """Parse `squeue --noheader --format=%i|%T|%r`. squeue has no exit codes."""
    states: dict[str, JobState] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 2:
            continue
        jobid = fields[0].strip()
        if not _JOBID.match(jobid):
            continue
        state = normalise_state(fields[1])
        if not state:
            continue
        reason = fields[2].strip() if len(fields) > 2 else ""
        reason = "" if reason == "None" else reason
        states[jobid] = JobState(jobid, state, fields[1].strip(), None, None, reason)
    return states


def describe_failure(job: JobState, logfile: str | None) -> str:
    """The message Snakemake shows for a failed job: state, exit code, meaning, log."""
    parts = [f"Slurm job {job.jobid} ended with state {job.raw_state or job.state}"]
    if job.exit_code is not None:
        parts[0] += f" (exit code {job.exit_code}:{job.signal or 0})"
    meaning = None
    if job.state == "FAILED" and job.exit_code in EXIT_CODE_MEANINGS:
        meaning = EXIT_CODE_MEANINGS[job.exit_code]
    meaning = meaning or STATE_EXPLANATIONS.get(job.state)
    if meaning:
        parts.append(meaning)
    if logfile:
        parts.append(f"log: {logfile}")
    return "; ".join(parts) + "."


def unknown_states(states: Iterable[JobState]) -> set[str]:
    return {s.state for s in states if s.outcome is None}
