"""Find the Kind clusters kindslurm created on this node and judge whether they are orphans.

Used by `kindslurm list` and `kindslurm gc`. One container-runtime call finds
the node containers (`<runtime> ps -a --filter label=io.kindslurm.user=<user>
--format json`); they are grouped by our `io.kindslurm.cluster` label and
joined with the per-user state records the runner writes (which hold the
runner's pid). One `sacct` call (with a `squeue` fallback for the ids sacct
does not know) gives every owning job's state.

A cluster is an orphan when nothing will ever delete it: only its runner
does that, so a cluster whose runner process is verifiably alive on this node
is never an orphan. Otherwise the owning Slurm job decides: still active ->
alive; ended -> orphan. When Slurm does not know the job (or there is no job),
a state record on this node whose runner pid is gone makes it an orphan;
without such evidence the cluster is "unknown" and left alone.

Node containers without our labels (someone's own `kind create cluster`) are
never listed, judged or deleted, and a delete is refused when kind's label
for the name is also on a node that is not the user's. The build_*, parse_*,
classify_*, join_* and format_* functions are pure; gather_*, read_*, query_*
and delete_* do the I/O.
"""

from __future__ import annotations

import enum
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import process
from .kind import cluster as kind_cluster
from .kind import naming
from .slurm.status import (
    JobState,
    Outcome,
    build_squeue_jobs_argv,
    parse_sacct,
    parse_squeue,
    squeue_answered,
)

LIST_TIMEOUT = 60.0
SLURM_TIMEOUT = 60.0
API_CONTAINER_PORT = 6443
# A runner writes its record right after it starts; a process that started
# later than this after the record's creation time is not that runner.
PID_START_SLACK = 5.0
_RECORD_DIR_GLOBS = ("/tmp/kindslurm-*/clusters", "/run/user/*/kindslurm-*/clusters")


# ------------------------------------------------------------ containers ---


@dataclass(frozen=True)
class NodeContainer:
    """One Kind node container carrying our labels."""

    name: str
    cluster: str
    user: str
    slurm_job_id: str | None
    created: str
    host: str
    state: str  # the runtime's word: running, exited, created, ...
    role: str = ""
    api_port: int | None = None


def build_list_containers_argv(runtime: str, user: str | None) -> list[str]:
    """One user's node containers, or (user None) every container with our labels."""
    label = f"{naming.LABEL_USER}={user}" if user is not None else naming.LABEL_CLUSTER
    return [runtime, "ps", "-a", "--filter", f"label={label}", "--format", "json"]


def build_kind_nodes_argv(runtime: str, name: str) -> list[str]:
    """Every node container kind counts as cluster name's (kind's label), as JSON."""
    label = f"{naming.KIND_CLUSTER_LABEL}={name}"
    return [runtime, "ps", "-a", "--filter", f"label={label}", "--format", "json"]


def find_foreign_nodes(text: str, user: str) -> list[str]:
    """Node containers in `ps --format json` output that are not user's kindslurm
    nodes (another user's, or not kindslurm's at all). Pure."""
    foreign = []
    for item in _json_items(text):
        if not isinstance(item, dict):
            continue
        labels = _labels(item.get("Labels"))
        if labels.get(naming.LABEL_USER) != user or naming.LABEL_CLUSTER not in labels:
            names = _names(item.get("Names"))
            foreign.append(names[0] if names else str(item.get("Id", "?"))[:12])
    return foreign


def build_find_cluster_argv(runtime: str, name: str) -> list[str]:
    """One cluster's node containers (by our label), as JSON."""
    label = f"{naming.LABEL_CLUSTER}={name}"
    return [runtime, "ps", "-a", "--filter", f"label={label}", "--format", "json"]


def _json_items(text: str) -> list[Any]:
    """Podman prints one JSON array; docker prints one JSON object per line."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        data = json.loads(text)
        return data if isinstance(data, list) else []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _labels(raw: Any) -> dict[str, str]:
    """Podman gives a mapping; docker a `k=v,k=v` string (values may hold commas)."""
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    labels: dict[str, str] = {}
    last = None
    for part in str(raw or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            labels[key] = value
            last = key
        elif last is not None:
            labels[last] += "," + part
    return labels


def _names(raw: Any) -> list[str]:
    if isinstance(raw, list):
        return [str(n) for n in raw]
    return [n.strip() for n in str(raw or "").split(",") if n.strip()]


_DOCKER_PORT = re.compile(r"(?:[\d.]+|\[[0-9a-f:]*\]):(\d+)->(\d+)/tcp")


def _api_port(raw: Any) -> int | None:
    """The host port published for the API server's 6443."""
    if isinstance(raw, list):
        for port in raw:
            if isinstance(port, dict) and port.get("container_port") == API_CONTAINER_PORT:
                host_port = port.get("host_port")
                return int(host_port) if isinstance(host_port, int) else None
        return None
    for match in _DOCKER_PORT.finditer(str(raw or "")):
        if int(match.group(2)) == API_CONTAINER_PORT:
            return int(match.group(1))
    return None


def parse_runtime_ps(text: str) -> list[NodeContainer]:
    """Node containers in `<runtime> ps -a --format json` output. Pure.

    Containers without both kind's cluster label and ours are dropped: they
    are not kindslurm's.
    """
    try:
        items = _json_items(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"the container runtime printed invalid JSON: {err}") from err
    nodes = []
    for item in items:
        if not isinstance(item, dict):
            continue
        labels = _labels(item.get("Labels"))
        cluster = labels.get(naming.LABEL_CLUSTER, "")
        if not cluster or labels.get(naming.KIND_CLUSTER_LABEL) != cluster:
            continue
        names = _names(item.get("Names"))
        nodes.append(
            NodeContainer(
                name=names[0] if names else str(item.get("Id", ""))[:12],
                cluster=cluster,
                user=labels.get(naming.LABEL_USER, ""),
                slurm_job_id=labels.get(naming.LABEL_SLURM_JOB_ID) or None,
                created=labels.get(naming.LABEL_CREATED, ""),
                host=labels.get(naming.LABEL_HOST, ""),
                state=str(item.get("State", "")).lower(),
                role=labels.get("io.x-k8s.kind.role", ""),
                api_port=_api_port(item.get("Ports")),
            )
        )
    return nodes


# --------------------------------------------------------------- records ---


@dataclass(frozen=True)
class RecordFile:
    path: str
    record: naming.StateRecord


def record_dirs(environ: Mapping[str, str], uid: int, all_users: bool) -> list[Path]:
    """Where state records live: this user's directory, or (all users) every user's."""
    dirs = [naming.state_dir(environ, uid)]
    if all_users:
        for pattern in _RECORD_DIR_GLOBS:
            dirs.extend(Path(p) for p in sorted(Path("/").glob(pattern.lstrip("/"))))
    return list(dict.fromkeys(dirs))


def read_record_files(directories: Iterable[Path]) -> list[RecordFile]:
    """Every readable record, with the file it came from; a record claiming another
    uid than its directory's owner is skipped (anyone may write into their own)."""
    found = []
    for directory in directories:
        try:
            owner = directory.lstat().st_uid
        except OSError:
            continue
        for record in naming.read_state_records(directory):
            if record.uid == owner:
                found.append(RecordFile(str(directory / f"{record.name}.json"), record))
    return found


# -------------------------------------------------------------- processes ---


@dataclass(frozen=True)
class ProcessFacts:
    """What /proc says about a pid (None in ProcessFacts' place: no such process)."""

    pid: int
    uid: int
    state: str  # R, S, Z, ...
    cmdline: str
    start_time: float  # seconds since the epoch


class RunnerStatus(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # no record, or it belongs to another node


def parse_proc_stat(text: str) -> tuple[str, int]:
    """(state, start time in clock ticks after boot) from /proc/<pid>/stat. Pure."""
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], int(fields[19])


def parse_boot_time(proc_stat: str) -> float:
    """`btime` from /proc/stat. Pure."""
    for line in proc_stat.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise ValueError("no btime line in /proc/stat")


def parse_created(text: str) -> datetime | None:
    """Our `created` stamp (`2026-11-28T10:56:01Z`), or None."""
    try:
        moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC)


def classify_runner(
    record: naming.StateRecord | None, this_host: str, facts: ProcessFacts | None
) -> RunnerStatus:
    """Is the record's runner still running? Pure.

    A pid is only trusted when it is the same user's, not a zombie, a
    kindslurm process, and started no later than the record was written
    (pids are reused).
    """
    if record is None or record.host != this_host:
        return RunnerStatus.UNKNOWN
    if facts is None or facts.state == "Z" or facts.uid != record.uid:
        return RunnerStatus.DEAD
    if "kindslurm" not in facts.cmdline:
        return RunnerStatus.DEAD
    created = parse_created(record.created)
    if created is not None and facts.start_time > created.timestamp() + PID_START_SLACK:
        return RunnerStatus.DEAD
    return RunnerStatus.ALIVE


def gather_process_facts(pid: int) -> ProcessFacts | None:
    """Read /proc for pid; None when it does not exist (or cannot be read)."""
    base = Path(f"/proc/{pid}")
    try:
        uid = base.stat().st_uid
        state, ticks = parse_proc_stat(base.joinpath("stat").read_text(errors="replace"))
        cmdline = (
            base.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
        boot = parse_boot_time(Path("/proc/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    return ProcessFacts(pid, uid, state, cmdline.strip(), boot + ticks / os.sysconf("SC_CLK_TCK"))


# ----------------------------------------------------------- job states ---


_JOB_ID = re.compile(r"^\d+(?:_\d+)?$")


def build_sacct_jobs_argv(sacct: str, job_ids: Sequence[str]) -> list[str]:
    """One sacct call for the given jobs (with --jobs sacct searches all time).

    JobID, not JobIdRaw: array tasks are labelled `<array job>_<task>`.
    """
    return [
        sacct,
        "--allocations",
        "--parsable2",
        "--noheader",
        "--format=JobID,State,ExitCode",
        f"--jobs={','.join(job_ids)}",
    ]


@dataclass(frozen=True)
class JobLookup:
    """Job states found; answered: Slurm answered the query (a job missing from
    states is then unknown to it); problem: why Slurm could not be asked."""

    states: Mapping[str, JobState] = field(default_factory=dict)
    answered: bool = False
    problem: str = ""


def query_job_states(
    job_ids: Iterable[str], *, sacct: str = "sacct", squeue: str = "squeue"
) -> JobLookup:
    """One sacct call for every id, then one squeue call for the ids sacct did not
    list (accounting lags a few seconds, or is not configured)."""
    # A label is the user's to set: only well-formed ids reach the command line;
    # Slurm cannot know the others (they count as unknown to it).
    ids = sorted({j for j in job_ids if _JOB_ID.match(j)}, key=lambda j: (len(j), j))
    if not ids:
        return JobLookup(answered=True)
    states: dict[str, JobState] = {}
    answered = False
    problems = []
    try:
        result = process.run(build_sacct_jobs_argv(sacct, ids), timeout=SLURM_TIMEOUT, check=False)
        if result.returncode == 0:
            states.update(parse_sacct(result.stdout))
            answered = True
        else:
            problems.append(_describe(result))
    except process.CommandError as err:
        problems.append(err.describe())
    missing = [i for i in ids if i not in states]
    if missing:
        try:
            result = process.run(
                build_squeue_jobs_argv(squeue, missing), timeout=SLURM_TIMEOUT, check=False
            )
            if squeue_answered(result.returncode, result.output):
                found = parse_squeue(result.stdout)
                states.update({k: v for k, v in found.items() if k in missing})
                answered = True
            else:
                problems.append(_describe(result))
        except process.CommandError as err:
            problems.append(err.describe())
    return JobLookup(states, answered, "" if answered else "\n".join(problems))


def _describe(result: process.CommandResult) -> str:
    error = process.CommandError(result.argv, result.returncode, result.stdout, result.stderr)
    return error.describe()


# ------------------------------------------------------------- judgement ---


@dataclass(frozen=True)
class Cluster:
    """A cluster as found on this node: its node containers and its state record."""

    name: str
    user: str
    slurm_job_id: str | None
    host: str
    created: str
    nodes: tuple[NodeContainer, ...] = ()
    record: RecordFile | None = None

    @property
    def api_port(self) -> int | None:
        return next((n.api_port for n in self.nodes if n.api_port), None)


def join_clusters(
    nodes: Iterable[NodeContainer], records: Iterable[RecordFile], *, own_user: str
) -> list[Cluster]:
    """Group node containers by cluster and attach the state records. Pure.

    A record without containers (a create in progress, or a runner killed
    before its first container) becomes a cluster without nodes when it is
    own_user's: another user's nodes may live in a container storage we do
    not see (rootless), so only their node containers make them ours to judge.
    """
    by_name: dict[str, list[NodeContainer]] = {}
    for node in nodes:
        by_name.setdefault(node.cluster, []).append(node)
    record_by_name: dict[tuple[str, str], RecordFile] = {
        (r.record.name, r.record.user): r for r in records
    }
    clusters = []
    for name, members in by_name.items():
        first = members[0]
        clusters.append(
            Cluster(
                name=name,
                user=first.user,
                slurm_job_id=first.slurm_job_id,
                host=first.host,
                created=first.created,
                nodes=tuple(sorted(members, key=lambda n: n.name)),
                record=record_by_name.get((name, first.user)),
            )
        )
    for (name, user), record in record_by_name.items():
        if name in by_name or user != own_user:
            continue
        rec = record.record
        clusters.append(
            Cluster(name, rec.user, rec.slurm_job_id, rec.host, rec.created, (), record)
        )
    return sorted(clusters, key=lambda c: (c.created, c.name))


class Verdict(enum.Enum):
    ALIVE = "alive"
    ORPHAN = "orphan"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str
    job: JobState | None = None
    runner: RunnerStatus = RunnerStatus.UNKNOWN

    @property
    def alive(self) -> bool | None:
        """True/False for alive/orphan, None when it cannot be told."""
        return {Verdict.ALIVE: True, Verdict.ORPHAN: False}.get(self.verdict)


def classify_cluster(
    cluster: Cluster,
    lookup: JobLookup,
    runner: RunnerStatus,
    ended_jobs: frozenset[str] = frozenset(),
    runtime_service: str = "",
) -> Judgement:
    """Alive, orphan or unknown (see the module docstring). Pure.

    ended_jobs: ids the caller knows have ended although Slurm may still list
    them as COMPLETING (a Slurm epilog runs while its job completes).
    runtime_service: the CONTAINER_HOST (DOCKER_HOST) the caller's runtime
    uses, "" for the local one. A record without visible nodes that was made
    through another runtime may have nodes there: unknown, not orphan.
    """
    pid = cluster.record.record.runner_pid if cluster.record else None
    job_id = cluster.slurm_job_id
    job = lookup.states.get(job_id) if job_id is not None else None

    def judge(verdict: Verdict, reason: str) -> Judgement:
        return Judgement(verdict, reason, job, runner)

    if runner is RunnerStatus.ALIVE:
        reason = f"its runner (pid {pid}) is running"
        return judge(Verdict.ALIVE, f"job {job_id} is {job.state}; {reason}" if job else reason)
    made_through = cluster.record.record.runtime_service if cluster.record else ""
    if cluster.record and not cluster.nodes and made_through != runtime_service:
        variable = kind_cluster.service_variable(cluster.record.record.provider)
        made = f"{variable}={made_through}" if made_through else "the local runtime"
        asks = f"{variable}={runtime_service}" if runtime_service else "the local runtime"
        again = f"{variable}={made_through}" if made_through else f"{variable} unset"
        return judge(
            Verdict.UNKNOWN,
            f"it was made through {made} and this command asks {asks}, where its nodes "
            f"cannot be seen: run it again with {again}",
        )
    gone = f"its runner (pid {pid}) is gone"
    if job_id is not None:
        if job_id in ended_jobs:
            return judge(Verdict.ORPHAN, f"job {job_id} has ended")
        if job is not None:
            outcome = job.outcome
            if outcome is Outcome.RUNNING:
                return judge(Verdict.ALIVE, f"job {job_id} is {job.state}")
            if outcome is not None:
                return judge(Verdict.ORPHAN, f"job {job_id} ended: {job.raw_state}")
            return judge(Verdict.UNKNOWN, f"job {job_id} is in state {job.raw_state}")
        if not lookup.answered:
            return judge(Verdict.UNKNOWN, f"Slurm could not be asked about job {job_id}")
        if runner is RunnerStatus.DEAD:
            return judge(Verdict.ORPHAN, f"job {job_id} is unknown to Slurm and {gone}")
        return judge(
            Verdict.UNKNOWN,
            f"job {job_id} is unknown to Slurm and no state record on this node names its runner",
        )
    if runner is RunnerStatus.DEAD:
        return judge(Verdict.ORPHAN, f"no Slurm job and {gone}")
    if cluster.nodes and all(n.state != "running" for n in cluster.nodes):
        return judge(Verdict.ORPHAN, "no Slurm job, no state record, and its nodes are stopped")
    return judge(Verdict.UNKNOWN, "no Slurm job and no state record on this node names its runner")


@dataclass(frozen=True)
class Judged:
    cluster: Cluster
    judgement: Judgement


def judge_clusters(
    clusters: Sequence[Cluster],
    lookup: JobLookup,
    this_host: str,
    facts_of: Callable[[int], ProcessFacts | None],
    ended_jobs: frozenset[str] = frozenset(),
    runtime_service: str = "",
) -> list[Judged]:
    judged = []
    for cluster in clusters:
        record = cluster.record.record if cluster.record else None
        facts = facts_of(record.runner_pid) if record is not None else None
        runner = classify_runner(record, this_host, facts)
        judgement = classify_cluster(cluster, lookup, runner, ended_jobs, runtime_service)
        judged.append(Judged(cluster, judgement))
    return judged


# ---------------------------------------------------------------- output ---


def format_age(seconds: float | None) -> str:
    """`42s`, `5m`, `3h12m`, `2d3h`; `?` when unknown. Pure."""
    if seconds is None or seconds < 0:
        return "?"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours else f"{days}d"


def age_seconds(created: str, now: datetime) -> float | None:
    moment = parse_created(created)
    return None if moment is None else (now - moment).total_seconds()


def cluster_to_dict(judged: Judged, now: datetime) -> dict[str, Any]:
    """The `kindslurm list --json` entry of one cluster. Pure."""
    cluster, judgement = judged.cluster, judged.judgement
    record = cluster.record.record if cluster.record else None
    job = judgement.job
    return {
        "name": cluster.name,
        "user": cluster.user,
        "slurm_job_id": cluster.slurm_job_id,
        "job_state": job.state if job else None,
        "job_state_raw": job.raw_state if job else None,
        "node": cluster.host,
        "created": cluster.created,
        "age_seconds": age_seconds(cluster.created, now),
        "alive": judgement.alive,
        "orphan": judgement.verdict is Verdict.ORPHAN,
        "reason": judgement.reason,
        "runner_pid": record.runner_pid if record else None,
        "runner": judgement.runner.value,
        "api_port": cluster.api_port,
        "nodes": [{"name": n.name, "role": n.role, "state": n.state} for n in cluster.nodes],
        "state_record": cluster.record.path if cluster.record else None,
        "kubeconfig": record.kubeconfig if record else None,
    }


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_cluster_table(judged: Sequence[Judged], now: datetime, *, show_user: bool) -> str:
    header = ["CLUSTER", "USER", "JOB", "JOB STATE", "NODE", "AGE", "NODES", "ALIVE", "WHY"]
    rows = [header]
    for item in judged:
        cluster, judgement = item.cluster, item.judgement
        running = sum(n.state == "running" for n in cluster.nodes)
        alive = {True: "yes", False: "NO", None: "?"}[judgement.alive]
        rows.append(
            [
                cluster.name,
                cluster.user,
                cluster.slurm_job_id or "-",
                judgement.job.state if judgement.job else "-",
                cluster.host or "?",
                format_age(age_seconds(cluster.created, now)),
                f"{running}/{len(cluster.nodes)} up",
                alive,
                judgement.reason,
            ]
        )
    if not show_user:
        rows = [row[:1] + row[2:] for row in rows]
    return format_table(rows)


# --------------------------------------------------------------- gather ---


@dataclass(frozen=True)
class Discovery:
    judged: list[Judged]
    lookup: JobLookup


def gather_clusters(
    runtime: str,
    *,
    user: str | None,
    own_user: str,
    environ: Mapping[str, str],
    uid: int,
    this_host: str,
    ended_jobs: frozenset[str] = frozenset(),
    sacct: str = "sacct",
    squeue: str = "squeue",
    provider: str = "podman",
) -> Discovery:
    """List (user None: every user's) clusters on this node and judge them.

    Raises process.CommandError when the container runtime cannot be asked.
    """
    result = process.run(
        build_list_containers_argv(runtime, user),
        timeout=LIST_TIMEOUT,
        hint=f"check that `{runtime} ps` works for this user on this node",
    )
    try:
        nodes = parse_runtime_ps(result.stdout)
    except ValueError as err:
        raise process.CommandError(
            result.argv, result.returncode, result.stdout, result.stderr, reason=str(err)
        ) from err
    records = read_record_files(record_dirs(environ, uid, all_users=user is None))
    clusters = join_clusters(nodes, records, own_user=own_user)
    job_ids = [c.slurm_job_id for c in clusters if c.slurm_job_id]
    lookup = query_job_states(job_ids, sacct=sacct, squeue=squeue)
    service = kind_cluster.runtime_service(provider, environ) or ""
    judged = judge_clusters(clusters, lookup, this_host, gather_process_facts, ended_jobs, service)
    return Discovery(judged, lookup)


# ---------------------------------------------------------------- delete ---


def safe_tempdir(record: naming.StateRecord) -> Path | None:
    """The record's private temp dir, if it really is one the runner made. Pure but
    for the lstat.

    A record is a file in the user's own directory; root's gc must not remove
    whatever path a record names.
    """
    path = Path(record.tempdir)
    if not path.is_absolute() or not path.name.startswith(f"kindslurm-{record.name}-"):
        return None
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != record.uid:
        return None
    return path


@dataclass(frozen=True)
class DeleteResult:
    name: str
    ok: bool
    problems: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    refused: bool = False  # not attempted: it would have touched someone else's nodes


def delete_cluster(
    cluster: Cluster,
    *,
    kind_bin: str,
    runtime_bin: str,
    provider: str,
    environ: Mapping[str, str],
    delete_timeout: float = 60.0,
) -> DeleteResult:
    """The runner's own cleanup (kind delete, then containers and volumes by label),
    then the state record and the runner's temp dir.

    `kind delete cluster --name` removes every node with kind's label for that
    name, so it is refused when any of them is not this user's kindslurm node
    (names are random, but a shared root storage holds everyone's).
    """
    env = kind_cluster.build_kind_env(environ, provider)
    try:
        listing = process.run(build_kind_nodes_argv(runtime_bin, cluster.name), env=env)
        foreign = find_foreign_nodes(listing.stdout, cluster.user)
    except (process.CommandError, ValueError) as err:
        return DeleteResult(cluster.name, False, (f"cannot list its node containers: {err}",))
    if foreign:
        why = (
            f"refused: node containers {', '.join(foreign)} carry kind's label for "
            f"{cluster.name} but are not {cluster.user}'s kindslurm nodes"
        )
        return DeleteResult(cluster.name, False, (why,), refused=True)
    removed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kindslurm-gc-") as scratch:
        # Never the record's kubeconfig: a path from a user's file, and kind writes to it.
        plan = kind_cluster.CleanupPlan(
            cluster_name=cluster.name,
            kind_bin=kind_bin,
            runtime_bin=runtime_bin,
            provider=provider,
            kubeconfig=os.path.join(scratch, "kubeconfig"),
            node_names=tuple(n.name for n in cluster.nodes),
            delete_timeout=delete_timeout,
            sweep=True,
        )
        report = kind_cluster.execute_cleanup(plan, env=env)
    problems = list(report.problems)
    if not report.ok:
        return DeleteResult(cluster.name, False, tuple(problems))
    if cluster.nodes:
        removed.append("nodes " + ", ".join(n.name for n in cluster.nodes) + " and their volumes")
    ok = True
    if cluster.record is not None:
        tempdir = safe_tempdir(cluster.record.record)
        if tempdir is not None:
            try:
                shutil.rmtree(tempdir)
                removed.append(f"temp dir {tempdir}")
            except OSError as err:
                problems.append(f"cannot remove {tempdir}: {err}")
                ok = False
        try:
            os.unlink(cluster.record.path)
            removed.append(f"state record {cluster.record.path}")
        except FileNotFoundError:
            pass
        except OSError as err:
            problems.append(f"cannot remove {cluster.record.path}: {err}")
            ok = False
    return DeleteResult(cluster.name, ok, tuple(problems), tuple(removed))
