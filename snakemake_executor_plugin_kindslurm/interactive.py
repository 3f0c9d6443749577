"""Interactive clusters: the pieces of `kindslurm up`, `down` and the hidden `_hold`.

`up` submits one Slurm job whose batch script execs the lifecycle runner
with a "hold" workload (`python -m snakemake_executor_plugin_kindslurm.cli
_hold ...`). Inside the allocation the hold copies the runner's private
kubeconfig to a user-visible path (mode 0600), writes a ready marker (JSON)
next to the job log, and sleeps until a signal arrives; the runner then
deletes the cluster, and the hold removes the files it wrote. `up` polls the
ready marker on the shared file system and the job's state.

Kind publishes the API server on 127.0.0.1:<port> of the compute node. The
kubeconfig keeps `server: https://127.0.0.1:<port>` (the address in the
API server's certificate), so it works on the node itself and, unchanged,
from any machine that forwards that port: `ssh -N -L <port>:127.0.0.1:<port>
<node>`.

Builders and parsers here are pure; hold() and the wait loops do the I/O.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from . import process
from .runner import TIME_LIMIT_SIGNAL
from .slurm.partitions import parse_slurm_time
from .slurm.status import JobState
from .slurm.submit import SIGNAL_EARLY_SECONDS

UP_JOB_NAME = "kindslurm-up"
CLI_MODULE = "snakemake_executor_plugin_kindslurm.cli"
HOLD_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

# sbatch options `up` sets itself, or that would break how it follows the job.
FORBIDDEN_UP_OPTIONS: dict[str, str] = {
    "--wrap": "the batch script is `up`'s own",
    "--parsable": "`up` sets it",
    "--signal": "use `kindslurm up --cleanup-grace-seconds`",
    "--output": "use `kindslurm up --log-dir`",
    "-o": "use `kindslurm up --log-dir`",
    "--error": "stderr goes to the job log `up` reads",
    "-e": "stderr goes to the job log `up` reads",
    "--job-name": f"`kindslurm down` finds the job by its name {UP_JOB_NAME}",
    "-J": f"`kindslurm down` finds the job by its name {UP_JOB_NAME}",
    "--time": "use `kindslurm up --time`",
    "-t": "use `kindslurm up --time`",
    "--array": "one cluster per `up`",
    "-a": "one cluster per `up`",
    "--nodes": "a Kind cluster lives on one node",
    "-N": "a Kind cluster lives on one node",
    "--wait": "`up` waits itself (--wait-timeout)",
    "-W": "`up` waits itself (--wait-timeout)",
    "--chdir": "the working directory (mounted at /app) is where you run `up`",
    "-D": "the working directory (mounted at /app) is where you run `up`",
}


def validate_up_sbatch_options(tokens: Sequence[str]) -> tuple[str, ...]:
    """Refuse sbatch options `up` owns; ValueError says which and what to use. Pure."""
    for token in tokens:
        if any(ch in token for ch in "\n\r\0"):
            raise ValueError(f"sbatch option {token!r} contains a control character")
        if token.startswith("--"):
            name = token.split("=", 1)[0]
        elif token.startswith("-") and len(token) >= 2:
            name = token[:2]
        else:
            continue
        if name in FORBIDDEN_UP_OPTIONS:
            raise ValueError(
                f"sbatch option {name} is not allowed after `--`: {FORBIDDEN_UP_OPTIONS[name]}"
            )
    return tuple(tokens)


def partition_option(tokens: Sequence[str]) -> str | None:
    """The partition the sbatch options ask for (`--partition=P`, `--partition P`,
    `-p P`, `-pP`; the last one wins), None when they name none. Pure."""
    chosen = None
    for i, token in enumerate(tokens):
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.startswith("--partition="):
            chosen = token.split("=", 1)[1]
        elif token in ("--partition", "-p"):
            chosen = following
        elif token.startswith("-p") and not token.startswith("--"):
            chosen = token[2:]
    return chosen or None


def format_duration(seconds: int | None) -> str:
    """`1-02:03:04`, `2:03:04`, `3:04` like squeue; `unlimited` for None. Pure."""
    if seconds is None:
        return "unlimited"
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def expand_job_id(template: str, job_id: str) -> str:
    """`%j` -> the job id (as in sbatch's --output). Pure."""
    return template.replace("%j", job_id)


# ------------------------------------------------------------ submitting ---


@dataclass(frozen=True)
class UpPaths:
    """Templates (`%j` = job id), absolute, as the job will see them."""

    log: str
    ready: str
    kubeconfig: str
    name_file: str | None = None


def default_up_paths(home: str, log_dir: str | None, kubeconfig: str | None) -> UpPaths:
    """Log and ready marker in log_dir (default ~/.kindslurm/up), kubeconfig in ~/.kube. Pure."""
    directory = log_dir or os.path.join(home, ".kindslurm", "up")
    return UpPaths(
        log=os.path.join(directory, f"{UP_JOB_NAME}-%j.log"),
        ready=os.path.join(directory, f"{UP_JOB_NAME}-%j.ready.json"),
        kubeconfig=kubeconfig or os.path.join(home, ".kube", "kindslurm-%j.yaml"),
    )


def build_hold_argv(python: str, paths: UpPaths) -> list[str]:
    argv = [
        python, "-m", CLI_MODULE, "_hold",
        "--ready-file", paths.ready,
        "--kubeconfig", paths.kubeconfig,
        "--log", paths.log,
    ]  # fmt: skip
    if paths.name_file:
        argv += ["--name-file", paths.name_file]
    return argv


def build_up_sbatch_argv(
    *,
    sbatch: str,
    workdir: str,
    output: str,
    warning_lead: int | None,
    time_limit: str | None,
    extra: Sequence[str] = (),
) -> list[str]:
    """sbatch for `up`; the batch script goes on stdin. `warning_lead`: see
    slurm.submit.time_limit_warning (None: no warning). Pure."""
    argv = [
        sbatch,
        "--parsable",
        f"--job-name={UP_JOB_NAME}",
        f"--chdir={workdir}",
        f"--output={output}",
        "--nodes=1",
        "--ntasks=1",
    ]
    if warning_lead is not None:
        # The runner's time-limit warning, to the batch shell (the runner) only: it
        # deletes the cluster before the hard kill, then lets the job time out.
        signame = TIME_LIMIT_SIGNAL.name.removeprefix("SIG")
        argv.append(f"--signal=B:{signame}@{warning_lead}")
    if time_limit:
        argv.append(f"--time={time_limit}")
    return [*argv, *extra]


# ---------------------------------------------------------- ready marker ---


@dataclass(frozen=True)
class ReadyInfo:
    """What the hold writes once the cluster can be used."""

    cluster: str
    node: str
    job_id: str
    kubeconfig: str
    api_server: str
    api_host: str
    api_port: int
    end_time: str | None
    log: str | None
    ready_file: str
    name_file: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ReadyInfo:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("ready marker must be a JSON object")
        return cls(**data)


def api_endpoint(kubeconfig: Mapping[str, Any], context_name: str) -> tuple[str, str, int]:
    """(server URL, host, port) of a context's cluster. Pure; ValueError if absent."""
    contexts = {c.get("name"): c.get("context") or {} for c in kubeconfig.get("contexts") or []}
    context = contexts.get(context_name)
    if not isinstance(context, dict):
        raise ValueError(f"kubeconfig has no context {context_name!r}")
    clusters = {c.get("name"): c.get("cluster") or {} for c in kubeconfig.get("clusters") or []}
    cluster = clusters.get(context.get("cluster"))
    server = str((cluster or {}).get("server") or "")
    parts = urlsplit(server)
    if not parts.hostname or not parts.port:
        raise ValueError(f"context {context_name!r} has no usable server URL ({server!r})")
    return server, parts.hostname, parts.port


def build_ssh_forward_argv(node: str, host: str, port: int) -> list[str]:
    """Forward local port to the API server on the node (same port: the kubeconfig's)."""
    target = "127.0.0.1" if host in LOCAL_HOSTS else host
    return ["ssh", "-N", "-L", f"{port}:{target}:{port}", node]


def build_attach_argv(
    srun: str, job_id: str, cluster: str, kubeconfig: str, shell: str
) -> list[str]:
    """An interactive login shell inside the job with the cluster's variables set."""
    return [
        srun, f"--jobid={job_id}", "--overlap", "--pty",
        "env", f"K8S_CLUSTER_NAME={cluster}", f"KUBECONFIG={kubeconfig}",
        shell, "-l",
    ]  # fmt: skip


def kubeconfig_header(cluster: str, job_id: str, node: str, host: str, port: int) -> str:
    ssh = shlex.join(build_ssh_forward_argv(node, host, port))
    return (
        f"# kindslurm: Kind cluster {cluster} of Slurm job {job_id} on node {node}.\n"
        "# It is deleted when the job ends (`kindslurm down`, scancel or the time limit).\n"
        f"# The API server listens on {host}:{port} on {node}; from another machine\n"
        f"# forward that port first:  {ssh}\n"
    )


def format_ready_message(
    info: ReadyInfo,
    *,
    time_left: int | None,
    time_known: bool,
    warning_lead: int | None,
    login_shell: str,
) -> str:
    """What `up` prints once the cluster is ready. Pure."""
    export = f"export KUBECONFIG={shlex.quote(info.kubeconfig)}"
    attach = shlex.join(
        build_attach_argv("srun", info.job_id, info.cluster, info.kubeconfig, login_shell)
    )
    ssh = shlex.join(build_ssh_forward_argv(info.node, info.api_host, info.api_port))
    if not time_known:
        lives = "It lives until its Slurm job ends"
    elif time_left is None:
        lives = "It lives until its Slurm job ends (no time limit)"
    else:
        if warning_lead is None:
            when = "at the time limit (too short a limit for an earlier warning)"
        else:
            when = f"{warning_lead}-{warning_lead + SIGNAL_EARLY_SECONDS} s before the time limit"
        lives = (
            f"It lives until its Slurm job ends: {format_duration(time_left)} left, and "
            f"kindslurm deletes it {when}"
        )
    lines = [
        f"Cluster {info.cluster} is ready (Slurm job {info.job_id} on node {info.node}).",
        f"{lives}; delete it earlier with: kindslurm down {info.job_id}",
        "",
        "On the node, in a shell inside the job:",
        f"  {attach}",
        "  (`kindslurm up --attach` opens such a shell as soon as the cluster is ready)",
        "",
    ]
    if info.api_host in LOCAL_HOSTS:
        lines += [
            f"From another machine: the API server listens on 127.0.0.1:{info.api_port} on "
            f"{info.node} only, so forward that port first (keep it running):",
            f"  {ssh} &",
        ]
    else:
        lines.append(f"The API server listens on {info.api_host}:{info.api_port}.")
    lines += [f"  {export}", "  kubectl get nodes"]
    return "\n".join(lines)


# ------------------------------------------------------------ following ---


class UpError(Exception):
    """`up` or `down` failed; the message says what and how to go on."""

    def __init__(self, message: str, code: int = 1, *, job_ended: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.job_ended = job_ended


def query_job(job_id: str) -> JobState | None:
    """The job's state (sacct, then squeue), or None when Slurm does not list it."""
    from .clusters import query_job_states

    return query_job_states([job_id]).states.get(job_id)


def squeue_active(job_id: str, squeue: str = "squeue") -> bool | None:
    """True while squeue lists the job as active (COMPLETING included: its
    processes, the runner's cleanup among them, still run); None if squeue failed."""
    from .slurm.status import Outcome, build_squeue_jobs_argv, parse_squeue

    try:
        result = process.run(build_squeue_jobs_argv(squeue, [job_id]), timeout=60, check=False)
    except process.CommandError:
        return None
    if result.returncode != 0:
        return False if "invalid job id" in result.output.lower() else None
    state = parse_squeue(result.stdout).get(job_id)
    return state is not None and state.outcome is Outcome.RUNNING


def query_job_name(job_id: str, squeue: str = "squeue") -> str | None:
    """The job's name while squeue lists it, else None."""
    argv = [squeue, "--noheader", f"--jobs={job_id}", "--format=%j"]
    try:
        result = process.run(argv, timeout=60, check=False)
    except process.CommandError:
        return None
    name = result.stdout.strip()
    return name if result.returncode == 0 and name else None


def build_time_left_argv(squeue: str, job_id: str) -> list[str]:
    return [squeue, "--noheader", f"--jobs={job_id}", "--format=%L"]


def query_partition_time_limit(partition: str | None, sinfo: str = "sinfo") -> int | None:
    """Seconds a job without --time gets in `partition` (None: the default one);
    None when unlimited, or when sinfo cannot say."""
    from .slurm.partitions import (
        build_sinfo_partitions_argv,
        job_time_limit,
        parse_sinfo_partitions,
    )

    try:
        text = process.run(build_sinfo_partitions_argv(sinfo), timeout=60).stdout
    except process.CommandError:
        return None
    return job_time_limit(parse_sinfo_partitions(text), partition)


def query_time_left(job_id: str, squeue: str = "squeue") -> tuple[int | None, bool]:
    """(seconds left, known): (None, True) means no time limit."""
    try:
        text = process.run(build_time_left_argv(squeue, job_id), timeout=60).stdout.strip()
    except process.CommandError:
        return None, False
    seconds = parse_slurm_time(text)
    return seconds, seconds is not None or text.upper() == "UNLIMITED"


def read_tail(path: str | None, lines: int = 25) -> str:
    if not path:
        return ""
    try:
        return tail(Path(path).read_text(errors="replace"), lines)
    except OSError:
        return ""


def _read_ready(path: str) -> ReadyInfo | None:
    try:
        return ReadyInfo.from_json(Path(path).read_text())
    except (OSError, ValueError, TypeError):
        return None


def describe_job(job: JobState) -> str:
    reason = job.reason if job.reason and job.reason != "None" else ""
    return job.state + (f" ({reason})" if reason else "")


def is_stale_pending(shown: str, job: JobState) -> bool:
    """True when `job` says PENDING after RUNNING was shown: sacct lags squeue by
    a few seconds after a start, so this is old news, not a requeue (that shows
    as REQUEUED first). Pure."""
    return job.state == "PENDING" and shown.split(" ", 1)[0] == "RUNNING"


def wait_for_ready(
    job_id: str,
    ready_path: str,
    log_path: str,
    timeout: float,
    on_state: Callable[[str], None],
    *,
    poll: float = 0.25,
    check_every: float = 2.0,
) -> ReadyInfo:
    """Poll the ready marker (shared file system) and the job's state until one
    answers; UpError when the job ends first or timeout passes."""
    from .slurm.status import Outcome, describe_failure
    from .spec import EXIT_CODE_MEANINGS

    deadline = time.monotonic() + timeout
    next_check = 0.0
    shown = ""
    while True:
        info = _read_ready(ready_path)
        if info is not None:
            return info
        now = time.monotonic()
        if now >= next_check:
            next_check = now + check_every
            job = query_job(job_id)
            if job is not None and describe_job(job) != shown and not is_stale_pending(shown, job):
                shown = describe_job(job)
                on_state(shown)
            if job is not None and job.outcome not in (Outcome.RUNNING, None):
                info = _read_ready(ready_path)
                if info is not None:
                    return info
                log_tail = read_tail(log_path)
                code = job.exit_code if job.exit_code in EXIT_CODE_MEANINGS else 1
                raise UpError(
                    f"the cluster never became ready: {describe_failure(job, log_path)}"
                    + (f"\nlast lines of the log:\n{log_tail}" if log_tail else ""),
                    code or 1,
                    job_ended=True,
                )
        if now >= deadline:
            log_tail = read_tail(log_path)
            raise UpError(
                f"the cluster of Slurm job {job_id} was not ready after {timeout:g} s "
                f"(job state: {shown or 'unknown'}); raise --wait-timeout if the queue is long"
                + (f"\nlast lines of the log:\n{log_tail}" if log_tail else "")
            )
        time.sleep(poll)


def build_find_up_jobs_argv(squeue: str, user: str) -> list[str]:
    return [squeue, "--noheader", f"--user={user}", f"--name={UP_JOB_NAME}", "--format=%i|%T|%r"]


def find_up_job(user: str, squeue: str = "squeue") -> str:
    """The user's only queued or running `up` job."""
    from .slurm.status import parse_squeue

    argv = build_find_up_jobs_argv(squeue, user)
    try:
        jobs = sorted(parse_squeue(process.run(argv, timeout=60).stdout))
    except process.CommandError as err:
        raise UpError(f"cannot list your `kindslurm up` jobs\n{err.describe()}") from err
    if not jobs:
        raise UpError(f"no `kindslurm up` job of {user} is queued or running")
    if len(jobs) > 1:
        raise UpError(f"several `kindslurm up` jobs: {', '.join(jobs)}; name one", 2)
    return jobs[0]


def job_id_of_cluster(name: str, runtime: str, environ: Mapping[str, str], uid: int) -> str:
    """A cluster's Slurm job: from its node labels (on its node), this user's state
    record, or else its name (`ks-<job id>-<suffix>`)."""
    from .clusters import build_find_cluster_argv, parse_runtime_ps
    from .kind import naming

    with contextlib.suppress(process.CommandError, ValueError):
        result = process.run(build_find_cluster_argv(runtime, name), timeout=60)
        for node in parse_runtime_ps(result.stdout):
            if node.slurm_job_id:
                return node.slurm_job_id
    with contextlib.suppress(OSError, ValueError, TypeError):
        path = naming.state_record_path(environ, uid, name)
        record = naming.StateRecord.from_json(path.read_text())
        if record.slurm_job_id:
            return record.slurm_job_id
    job_id = job_id_from_cluster_name(name)
    if job_id is None:
        raise UpError(
            f"cluster {name} belongs to no Slurm job (a `kindslurm run` outside Slurm?): "
            "stop that command (Ctrl-C); if it is gone, run `kindslurm gc --yes` on its node"
        )
    return job_id


def wait_for_job_end(job_id: str, deadline: float, poll: float = 0.5) -> bool:
    """Until squeue no longer lists the job as active; False at the deadline."""
    while squeue_active(job_id) is not False:
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def wait_for_nodes_gone(
    runtime: str, cluster: str, env: Mapping[str, str], deadline: float, poll: float = 0.5
) -> list[str]:
    """The cluster's node containers still there at the deadline ([] when gone, or
    when there is no runtime here to ask: a login node)."""
    from .kind import cluster as kind_cluster

    while True:
        try:
            left = kind_cluster.list_node_containers(runtime, cluster, env)
        except process.CommandError:
            return []
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(poll)


# ------------------------------------------------------------------ down ---

_NAME_JOB = re.compile(r"^ks-(\d+)(?:-(\d+))?-[a-z0-9]+$")
_JOB_ID = re.compile(r"^\d+(?:_\d+)?$")


def is_job_id(text: str) -> bool:
    return bool(_JOB_ID.match(text))


def job_id_from_cluster_name(name: str) -> str | None:
    """`ks-123-abc123` -> 123, `ks-123-4-abc123` -> 123_4, `ks-local-...` -> None. Pure."""
    match = _NAME_JOB.match(name)
    if not match:
        return None
    job, task = match.groups()
    return f"{job}_{task}" if task else job


_CLEANUP_LINE = re.compile(r"delete: cluster (\S+) (deleted|may be left behind)")


def classify_cleanup_log(log_text: str, cluster: str) -> str | None:
    """`deleted`, `left` (the runner says it may be left behind) or None. Pure."""
    verdict = None
    for match in _CLEANUP_LINE.finditer(log_text):
        if match.group(1) == cluster:
            verdict = "deleted" if match.group(2) == "deleted" else "left"
    return verdict


def tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


# --------------------------------------------------------------- batch ---


def classify_batch_position(environ: Mapping[str, str], parent_cmdline: str) -> str:
    """Where `kindslurm run` runs: `batch-shell` (exec'd by the batch script: good),
    `under-batch-shell` (a child of it: scancel and the time limit kill it before
    it can clean up), `step` (srun), or `none`. Pure."""
    if not environ.get("SLURM_JOB_ID"):
        return "none"
    if environ.get("SLURM_STEP_ID") not in (None, "", "batch"):
        return "step"
    if parent_cmdline.startswith("slurmstepd:"):
        return "batch-shell"
    if "slurm_script" in parent_cmdline:
        return "under-batch-shell"
    return "none"


def read_cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


# ------------------------------------------------------------------ hold ---


def _ensure_parent(path: Path) -> None:
    """Create missing parent directories mode 0700 (~/.kube holds credentials)."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)


def hold(
    *,
    ready_template: str,
    kubeconfig_template: str,
    log_template: str | None,
    name_file_template: str | None,
    environ: Mapping[str, str],
    end_time: Callable[[str], str | None],
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """The `up` workload: publish the cluster, wait for a stop signal, unpublish.

    Returns 0 when stopped by a signal, 1 when the cluster could not be
    published (the runner then deletes it and the job fails).
    """
    import yaml

    from .kind import kubeconfig as kind_kubeconfig

    stop: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)

    saved = {s: signal.signal(s, on_signal) for s in HOLD_STOP_SIGNALS}
    written: list[Path] = []
    try:
        cluster = environ["K8S_CLUSTER_NAME"]
        private = environ["KUBECONFIG"]
        job_id = environ.get("SLURM_JOB_ID") or "local"
        node = os.uname().nodename
        data = kind_kubeconfig.rewrite_kubeconfig(
            kind_kubeconfig.parse_kubeconfig(Path(private).read_text(), private), cluster
        )
        server, host, port = api_endpoint(data, cluster)
        kubeconfig = Path(expand_job_id(kubeconfig_template, job_id)).expanduser()
        ready = Path(expand_job_id(ready_template, job_id)).expanduser()
        name_file = (
            Path(expand_job_id(name_file_template, job_id)).expanduser()
            if name_file_template
            else None
        )
        text = kubeconfig_header(cluster, job_id, node, host, port) + yaml.safe_dump(
            data, sort_keys=False, default_flow_style=False
        )
        _ensure_parent(kubeconfig)
        kind_kubeconfig.write_private_file(kubeconfig, text)
        written.append(kubeconfig)
        if name_file is not None:
            _ensure_parent(name_file)
            name_file.write_text(cluster + "\n")
            written.append(name_file)
        info = ReadyInfo(
            cluster=cluster,
            node=node,
            job_id=job_id,
            kubeconfig=str(kubeconfig),
            api_server=server,
            api_host=host,
            api_port=port,
            end_time=end_time(job_id),
            log=expand_job_id(log_template, job_id) if log_template else None,
            ready_file=str(ready),
            name_file=str(name_file) if name_file else None,
        )
        # Written last: once it exists, everything it names is in place.
        _ensure_parent(ready)
        kind_kubeconfig.write_private_file(ready, info.to_json())
        written.append(ready)
        log(
            f"cluster {cluster} published: KUBECONFIG={kubeconfig}, API {host}:{port} on "
            f"{node}; holding it until the job is cancelled or reaches its time limit"
        )
        while not stop:
            sleep(1.0)
        log(f"received {signal.Signals(stop[0]).name}: unpublishing cluster {cluster}")
        return 0
    except (OSError, KeyError, ValueError, kind_kubeconfig.KubeconfigError) as err:
        log(f"cannot publish the cluster: {err}")
        return 1
    finally:
        for path in reversed(written):
            with contextlib.suppress(OSError):
                path.unlink()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
