"""Build the sbatch argv and job script for one Snakemake job; parse sbatch's answer.

Everything here is pure: the executor collects plain values from the Snakemake job
and these functions turn them into an argv list and a script text. Nothing is
ever joined into a shell string that a shell on the submit host would read.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

RUNNER_MODULE = "snakemake_executor_plugin_kindslurm.runner"

# sbatch(1), --signal: slurmctld checks its timers only every so often, so the
# warning may come up to this much earlier than the lead asked for.
SIGNAL_EARLY_SECONDS = 60
# A shorter warning lead than this is not worth asking for (unless the user asks
# for a shorter grace themselves).
MIN_WARNING_SECONDS = 10

# Options the plugin sets itself (or that would break how it tracks jobs).
# Maps every spelling to the reason shown to the user.
_OWN = "the plugin sets it itself"
FORBIDDEN_SBATCH_OPTIONS: dict[str, str] = {
    "--job-name": _OWN + " (it tags the whole run for one status query)",
    "-J": _OWN + " (it tags the whole run for one status query)",
    "--output": _OWN + " (use --kindslurm-logdir)",
    "-o": _OWN + " (use --kindslurm-logdir)",
    "--error": _OWN + " (stderr goes to the same job log)",
    "-e": _OWN + " (stderr goes to the same job log)",
    "--wrap": "the job script is passed on stdin; --wrap would bypass the runner",
    "--parsable": _OWN,
    "--chdir": _OWN + " (the workflow's working directory)",
    "-D": _OWN + " (the workflow's working directory)",
    "--comment": _OWN + " (rule and wildcards)",
    "--signal": _OWN + " (use --kindslurm-cleanup-grace-seconds)",
    "--nodes": "Kind clusters live on one node; use the resource nodes=1",
    "-N": "Kind clusters live on one node; use the resource nodes=1",
    "--cpus-per-task": "use the rule's threads",
    "-c": "use the rule's threads",
    "--mem": "use the resource mem_mb (or mem_mib / mem)",
    "--time": "use the resource runtime (minutes)",
    "-t": "use the resource runtime (minutes)",
    "--partition": "use the resource slurm_partition",
    "-p": "use the resource slurm_partition",
    "--account": "use the resource slurm_account",
    "-A": "use the resource slurm_account",
    "--array": "each Snakemake job is one Slurm job",
    "-a": "each Snakemake job is one Slurm job",
    "--wait": "the executor tracks jobs itself; --wait would block submission",
    "-W": "the executor tracks jobs itself; --wait would block submission",
    "--export": "the job needs the submitting environment (PATH, the Python that runs Snakemake)",
}

_SAFE_PATH_CHARS = re.compile(r"[^A-Za-z0-9._=+-]+")
_GRES = re.compile(r"^[A-Za-z0-9_.:,/-]+$")
_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.,:@+-]+$")


class SubmitError(ValueError):
    """A job cannot be submitted as configured; the message says why and how to fix it."""


@dataclass(frozen=True)
class SlurmRequest:
    """What one job asks of Slurm, already checked."""

    cpus_per_task: int = 1
    mem_mb: int | None = None
    time_minutes: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gres: str | None = None
    gpus: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)

    def time_limit(self, default: int | None) -> int | None:
        """Seconds the job may run: its runtime, else `default` (what its
        partition gives a job without --time; None: unlimited or not known)."""
        return default if self.time_minutes is None else self.time_minutes * 60


def _whole_number(rule: str, name: str, value: object, *, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise SubmitError(f"rule {rule}: resource {name} must be a whole number, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise SubmitError(
            f"rule {rule}: resource {name} must be a whole number, got {value!r}"
        )
    if number < minimum:
        raise SubmitError(f"rule {rule}: resource {name} must be at least {minimum}, got {number}")
    return number


def _name(rule: str, resource: str, value: object) -> str:
    text = str(value).strip()
    if not text or not _SLURM_NAME.match(text):
        raise SubmitError(
            f"rule {rule}: resource {resource}={value!r} is not a valid Slurm name "
            "(letters, digits and _.,:@+- only)"
        )
    return text


def validate_sbatch_extra(text: str, origin: str) -> tuple[str, ...]:
    """Split extra sbatch options and refuse the ones that would break the plugin.

    Accepts `--opt`, `--opt=value`, `--opt value`, `-x`, `-xVALUE`, `-x value`.
    `origin` names where the text came from, for the message.
    """
    try:
        tokens = shlex.split(text)
    except ValueError as err:
        raise SubmitError(f"{origin}: cannot parse {text!r}: {err}") from err
    previous_takes_value = False
    for token in tokens:
        if "\n" in token or "\r" in token or "\0" in token:
            raise SubmitError(f"{origin}: option {token!r} contains a control character")
        if token.startswith("-") and token not in ("-", "--"):
            name = token.split("=", 1)[0] if token.startswith("--") else token[:2]
            if name in FORBIDDEN_SBATCH_OPTIONS:
                raise SubmitError(
                    f"{origin}: option {name} is not allowed: {FORBIDDEN_SBATCH_OPTIONS[name]}"
                )
            previous_takes_value = (token.startswith("--") and "=" not in token) or (
                not token.startswith("--") and len(token) == 2
            )
        elif previous_takes_value:
            previous_takes_value = False
        else:
            raise SubmitError(
                f"{origin}: {token!r} is not an sbatch option (options start with - or --; "
                "write values as --option=value)"
            )
    return tuple(tokens)


def build_slurm_request(
    rule: str, threads: int, resources: Mapping[str, object], *, min_mem_mb: int = 0
) -> SlurmRequest:
    """Map Snakemake resources to Slurm options, rejecting bad values with a clear message.

    A memory request below min_mem_mb is raised to it: the job always runs the
    runner and Snakemake itself, which cannot start in a few MiB."""
    cpus = _whole_number(rule, "threads", threads, minimum=1)
    nodes = resources.get("nodes")
    if nodes is not None and _whole_number(rule, "nodes", nodes, minimum=1) > 1:
        raise SubmitError(
            f"rule {rule}: nodes={nodes} but a Kind cluster lives on a single node; "
            "request nodes=1 (or drop the resource) and use threads/mem_mb for size"
        )
    mem: int | None = None
    for key in ("mem_mib", "mem_mb"):
        if resources.get(key) is not None:
            mem = _whole_number(rule, key, resources[key], minimum=1)
            break
    else:
        if resources.get("mem") is not None:
            raise SubmitError(
                f"rule {rule}: resource mem={resources['mem']!r} was not understood by "
                "Snakemake as a size; write it like mem='4GB' or use mem_mb=4000"
            )
    if mem is not None and mem < min_mem_mb:
        mem = min_mem_mb
    runtime = resources.get("runtime")
    time_minutes = None if runtime is None else _whole_number(rule, "runtime", runtime, minimum=1)
    gres = resources.get("gres")
    gpu = resources.get("gpu")
    if gres is not None and gpu is not None:
        raise SubmitError(f"rule {rule}: give either gres or gpu, not both")
    gres_text = None
    if gres is not None:
        gres_text = str(gres).strip()
        if not _GRES.match(gres_text):
            raise SubmitError(
                f"rule {rule}: resource gres={gres!r} is malformed; "
                "write it like gres='gpu:1' or gres='gpu:a100:2'"
            )
    gpus_text = None
    if gpu is not None:
        count = _whole_number(rule, "gpu", gpu, minimum=1)
        model = resources.get("gpu_model")
        gpus_text = f"{_name(rule, 'gpu_model', model)}:{count}" if model else str(count)
    extra: tuple[str, ...] = ()
    if resources.get("slurm_extra"):
        extra = validate_sbatch_extra(str(resources["slurm_extra"]), f"rule {rule}: slurm_extra")
    return SlurmRequest(
        cpus_per_task=cpus,
        mem_mb=mem,
        time_minutes=time_minutes,
        partition=(
            _name(rule, "slurm_partition", resources["slurm_partition"])
            if resources.get("slurm_partition") else None
        ),
        account=(
            _name(rule, "slurm_account", resources["slurm_account"])
            if resources.get("slurm_account") else None
        ),
        qos=_name(rule, "qos", resources["qos"]) if resources.get("qos") else None,
        constraint=str(resources["constraint"]) if resources.get("constraint") else None,
        gres=gres_text,
        gpus=gpus_text,
        extra=extra,
    )


def safe_path_component(text: str, fallback: str = "_") -> str:
    """A file-name-safe rendering of text (also free of sbatch's % patterns)."""
    cleaned = _SAFE_PATH_CHARS.sub("_", text).strip("._") or fallback
    return cleaned[:120]


def log_path_pattern(logdir: str, rule: str, wildcards: Mapping[str, object]) -> str:
    """`<logdir>/rule_<rule>/<wildcards>/%j.log`, each part made path-safe."""
    parts = [logdir, safe_path_component(f"rule_{rule}")]
    if wildcards:
        joined = ",".join(f"{k}={v}" for k, v in wildcards.items())
        parts.append(safe_path_component(joined))
    return "/".join(parts) + "/%j.log"


def build_comment(rule: str, wildcards: Mapping[str, object]) -> str:
    """`rule=<rule> wildcards=<k=v,...>`, printable and bounded (Slurm keeps it in accounting)."""
    text = f"rule={rule}"
    if wildcards:
        text += " wildcards=" + ",".join(f"{k}={v}" for k, v in wildcards.items())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text[:250]


def time_limit_warning(grace: int, time_limit: int | None) -> int | None:
    """The lead of the time-limit warning (`--signal=B:USR1@lead`) for a job with
    `time_limit` seconds (None: none set here), or None when the job should not
    ask for one. Pure.

    Slurm may send the warning up to SIGNAL_EARLY_SECONDS before the lead it was
    asked for, so the lead is cut until even that early warning comes no sooner
    than half-way through the job; otherwise a 2-minute job could lose its
    cluster as soon as it starts. A limit too short for that gets no warning: at
    the limit Slurm sends SIGTERM and the runner deletes the cluster within
    Slurm's KillWait, as after scancel.
    """
    if time_limit is None:
        return grace
    lead = min(grace, time_limit // 2 - SIGNAL_EARLY_SECONDS)
    return lead if lead >= min(grace, MIN_WARNING_SECONDS) else None


def build_sbatch_argv(
    *,
    sbatch: str,
    job_name: str,
    workdir: str,
    output: str,
    comment: str,
    request: SlurmRequest,
    grace_seconds: int,
    global_extra: Sequence[str] = (),
    default_time_limit: int | None = None,
) -> list[str]:
    """The full sbatch argv; the job script itself goes to sbatch on stdin.
    `default_time_limit`: seconds Slurm gives a job without --time here (its
    partition's DefaultTime or MaxTime; None: unlimited or not known)."""
    argv = [
        sbatch,
        "--parsable",
        f"--job-name={job_name}",
        f"--chdir={workdir}",
        f"--output={output}",
        f"--comment={comment}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={request.cpus_per_task}",
    ]
    lead = time_limit_warning(grace_seconds, request.time_limit(default_time_limit))
    if lead is not None:
        # The time-limit warning goes to the runner (the batch shell) only: it
        # deletes the cluster before the hard kill, then lets the job time out.
        argv.append(f"--signal=B:USR1@{lead}")
    if request.mem_mb is not None:
        argv.append(f"--mem={request.mem_mb}M")
    if request.time_minutes is not None:
        argv.append(f"--time={request.time_minutes}")
    for flag, value in (
        ("--partition", request.partition),
        ("--account", request.account),
        ("--qos", request.qos),
        ("--constraint", request.constraint),
        ("--gres", request.gres),
        ("--gpus", request.gpus),
    ):
        if value:
            argv.append(f"{flag}={value}")
    argv.extend(global_extra)
    argv.extend(request.extra)
    return argv


def build_job_script(
    *, python: str, spec_json: str, command: str, description: str
) -> str:
    """A POSIX sh script that execs the runner, so the runner is the batch shell
    and receives Slurm's signals itself. Every value is shell-quoted."""
    safe_description = "".join(ch if ch.isprintable() else "?" for ch in description)
    runner = shlex.join(
        [python, "-m", RUNNER_MODULE, "--spec", spec_json, "--", "/bin/sh", "-c", command]
    )
    return f"#!/bin/sh\n# kindslurm job script: {safe_description}\nexec {runner}\n"


_JOBID = re.compile(r"^(\d+)(?:;[\w.-]+)?$")


def parse_sbatch_output(stdout: str) -> str:
    """The job id from `sbatch --parsable` (`123` or `123;cluster`), ignoring noise lines."""
    for line in reversed(stdout.strip().splitlines()):
        match = _JOBID.match(line.strip())
        if match:
            return match.group(1)
    raise ValueError(f"sbatch printed no job id: {stdout.strip()!r}")


def explain_sbatch_error(output: str) -> str:
    """A fix for the sbatch rejections users meet most often."""
    text = output.lower()
    if "invalid partition" in text:
        return "check the resource slurm_partition against `sinfo -s` (partitions you may use)"
    if "invalid account" in text or "account/partition" in text:
        return (
            "check the resource slurm_account against "
            "`sacctmgr show associations user=$USER format=account,partition`"
        )
    if "qos" in text:
        return "check the resource qos against `sacctmgr show associations user=$USER format=qos`"
    if "memory" in text or "mem" in text:
        return (
            "lower mem_mb or pick a partition whose nodes have that much memory "
            "(`sinfo -o '%P %m'`)"
        )
    if "time limit" in text:
        return "lower runtime or pick a partition with a longer MaxTime (`sinfo -o '%P %l'`)"
    if "node configuration" in text or "cpu" in text:
        return (
            "lower threads or pick a partition whose nodes have that many CPUs "
            "(`sinfo -o '%P %c'`)"
        )
    if "unrecognized option" in text or "invalid option" in text:
        return "fix the option in slurm_extra / --kindslurm-sbatch-extra (see `sbatch --help`)"
    return "read sbatch's message above; `sbatch --test-only` with the same options reproduces it"
