"""RemoteExecutor glue: submit each Snakemake job with sbatch, follow it with one
status query per round, cancel with one scancel call."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import glob
import logging
import os
import shlex
import sys
import time
import uuid
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime, timedelta
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
from snakemake_interface_executor_plugins.jobs import JobExecutorInterface
from snakemake_interface_executor_plugins.utils import (
    encode_target_jobs_cli_args,
    format_cli_arg,
)

from . import process
from .kind.cluster import service_variable
from .settings import DEFAULT_LOGDIR, ExecutorSettings
from .slurm.cancel import build_scancel_argv
from .slurm.environment import clean_slurm_environment
from .slurm.partitions import (
    Partition,
    build_sinfo_partitions_argv,
    job_time_limit,
    parse_sinfo_partitions,
)
from .slurm.status import (
    JobState,
    Outcome,
    build_sacct_argv,
    build_squeue_argv,
    build_squeue_jobs_argv,
    describe_failure,
    parse_sacct,
    parse_squeue,
    squeue_answered,
)
from .slurm.submit import (
    SIGNAL_EARLY_SECONDS,
    SubmitError,
    build_comment,
    build_job_script,
    build_sbatch_argv,
    build_slurm_request,
    explain_sbatch_error,
    log_path_pattern,
    parse_sbatch_output,
    time_limit_warning,
    validate_sbatch_extra,
)
from .spec import RunnerSpec, split_image_list

MIN_INTERVAL = 1.0
# Between rounds with active jobs: a tenth of the youngest job's age, at least
# ROUND_FLOOR seconds. A job's end is noticed within a few seconds (or ~10% of
# its run time), long jobs cost few queries, and a burst of short jobs does not
# turn into one sacct call per second (measured: that doubled our calls).
AGE_FRACTION = 0.1
ROUND_FLOOR = 3.0


def next_status_interval(youngest_age: float, maximum: float) -> float:
    """Seconds until the next status query. Pure."""
    return max(min(ROUND_FLOOR, maximum), min(maximum, AGE_FRACTION * youngest_age))


def requote_cli_arg(args: str, flag: str, values: list[str]) -> str:
    """Replace Snakemake's `repr()`-quoted `flag values...` in args by shell quoting.

    Snakemake quotes values with Python's repr(), which falls back to double
    quotes for a value containing a single quote, so `$(...)` or backticks in a
    wildcard would be expanded by the job's shell. shlex.quote never lets the
    shell interpret anything.
    """
    if not values:
        return args
    original = format_cli_arg(flag, values)
    if not original or original not in args:
        return args
    return args.replace(original, " ".join([flag, *(shlex.quote(v) for v in values)]), 1)


CLUSTER_RESOURCES = ("kind_node_image", "kind_config", "kind_preload_images")


def cluster_resources(members: list[tuple[str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    """The cluster a (group) job needs: None if no member rule wants one, else the
    per-rule cluster resources, which members of a group must agree on (they share
    one cluster)."""
    wanting = [(rule, res) for rule, res in members if kind_cluster_wanted(rule, res)]
    if not wanting:
        return None
    chosen: dict[str, Any] = {}
    for key in CLUSTER_RESOURCES:
        values = {(rule, str(res[key])) for rule, res in wanting if res.get(key)}
        distinct = {value for _, value in values}
        if len(distinct) > 1:
            listing = ", ".join(f"{rule}: {value!r}" for rule, value in sorted(values))
            raise WorkflowError(
                f"the rules of one group job share one Kind cluster, but they ask for "
                f"different {key} ({listing}); give them the same value or put them in "
                "different groups"
            )
        if distinct:
            chosen[key] = distinct.pop()
    return chosen


def kind_cluster_wanted(rule: str, resources: Mapping[str, Any]) -> bool:
    value = resources.get("kind_cluster", 1)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("0", "false", "no"):
        return False
    raise WorkflowError(
        f"rule {rule}: resource kind_cluster={value!r} must be 0 (plain Slurm job) "
        "or 1 (job runs inside a Kind cluster)"
    )


class _SnakemakeLogHandler(logging.Handler):
    """Sends the plugin's own log records (e.g. every external command with its
    duration, from process.run) to Snakemake's logger: shown with --verbose,
    silent otherwise."""

    def __init__(self, logger: Any) -> None:
        super().__init__(logging.DEBUG)
        self._logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            self._logger.error(message)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(message)
        else:
            self._logger.debug(message)


def route_plugin_logs(logger: Any) -> None:
    plugin_logger = logging.getLogger("kindslurm")
    plugin_logger.handlers = [_SnakemakeLogHandler(logger)]
    plugin_logger.setLevel(logging.DEBUG)
    plugin_logger.propagate = False


class Executor(RemoteExecutor):
    def __init__(self, workflow: Any, logger: Any) -> None:
        # RemoteExecutor.__init__ starts the status thread before it calls
        # __post_init__, so everything that thread reads is set up first.
        settings = workflow.executor_settings
        self.settings: ExecutorSettings = settings if settings is not None else ExecutorSettings()
        try:
            self.global_extra = (
                validate_sbatch_extra(self.settings.sbatch_extra, "--kindslurm-sbatch-extra")
                if self.settings.sbatch_extra
                else ()
            )
        except SubmitError as err:
            raise WorkflowError(str(err)) from err
        self.run_name = f"kindslurm-{uuid.uuid4().hex[:16]}"
        self.run_started = datetime.now()
        self.logdir = os.path.abspath(self.settings.logdir or DEFAULT_LOGDIR)
        self.user = getpass.getuser()
        self.status_command = "sacct" if self.settings.status_command != "squeue" else "squeue"
        self._interval = MIN_INTERVAL
        self._wake_at: float | None = None
        self._warned_states: set[str] = set()
        self._last_answer = time.monotonic()
        self._checked_configs: set[tuple[str, str | None, str | None]] = set()
        self._told_short_limits: set[str] = set()
        self._partitions: dict[str, Partition] | None = None  # sinfo's, once per run
        self.status_queries = 0
        super().__init__(workflow, logger)

    def __post_init__(self) -> None:
        route_plugin_logs(self.logger)
        self.next_seconds_between_status_checks = MIN_INTERVAL
        self._info(f"kindslurm: jobs of this run are named {self.run_name}; logs in {self.logdir}")

    def _info(self, message: str) -> None:
        """Progress lines: shown normally, only with --verbose under --quiet."""
        output = getattr(self.workflow, "output_settings", None)
        if getattr(output, "quiet", None):
            self.logger.debug(message)
        else:
            self.logger.info(message)

    # ------------------------------------------------------------------ submit
    def get_job_args(self, job: JobExecutorInterface, **kwargs: Any) -> str:
        args: str = super().get_job_args(job, **kwargs)
        args = requote_cli_arg(
            args, "--target-jobs", encode_target_jobs_cli_args(job.get_target_spec())
        )
        return args

    def _rule_and_wildcards(self, job: JobExecutorInterface) -> tuple[str, dict[str, str]]:
        if job.is_group():
            return f"group_{job.name}", {}
        wildcards = getattr(job, "wildcards_dict", None) or {}
        return job.name, {str(k): str(v) for k, v in dict(wildcards).items()}

    def run_job(self, job: JobExecutorInterface) -> None:
        rule, wildcards = self._rule_and_wildcards(job)
        resources = dict(job.resources.items())
        try:
            request = build_slurm_request(
                rule, job.threads, resources, min_mem_mb=self.settings.min_mem_mb
            )
        except SubmitError as err:
            raise WorkflowError(str(err)) from err
        members: list[tuple[str, Mapping[str, Any]]] = (
            [(str(m.name), dict(m.resources.items())) for m in job.jobs]
            if job.is_group()
            else [(rule, resources)]
        )
        cluster_res = cluster_resources(members)
        cluster = cluster_res is not None
        default_limit = None  # only a cluster's cleanup needs the warning to fit
        if cluster:
            if request.time_minutes is None:
                default_limit = job_time_limit(self._partition_limits(), request.partition)
            by_default = request.time_minutes is None
            self._tell_about_short_limit(rule, request.time_limit(default_limit), by_default)
        output = log_path_pattern(self.logdir, rule, wildcards)
        log_dir = os.path.dirname(output)
        os.makedirs(log_dir, exist_ok=True)

        workdir = os.getcwd()
        spec = self._runner_spec(rule, cluster_res or {}, cluster, workdir, log_dir)
        script = build_job_script(
            python=self.get_python_executable(),
            spec_json=spec.to_json(),
            command=self.format_job_exec(job),
            description=f"{rule} (Snakemake job {job.jobid})",
        )
        argv = build_sbatch_argv(
            sbatch="sbatch",
            job_name=self.run_name,
            workdir=workdir,
            output=output,
            comment=build_comment(rule, wildcards),
            request=request,
            grace_seconds=self.settings.cleanup_grace_seconds,
            global_extra=self.global_extra,
            default_time_limit=default_limit,
        )
        try:
            result = process.run(
                argv,
                input=script,
                env=job_environment(os.environ, self.settings.provider, self.settings.runtime_host),
                timeout=120,
                hint="",
            )
        except process.CommandNotFoundError as err:
            raise WorkflowError(
                "sbatch is not on PATH: this executor needs the Slurm client tools on "
                "the machine that runs Snakemake (install slurm-client or `module load slurm`)"
            ) from err
        except process.CommandError as err:
            raise WorkflowError(
                f"sbatch refused the job of rule {rule}:\n{err.describe()}\n"
                f"fix: {explain_sbatch_error(err.output)}"
            ) from err
        try:
            jobid = parse_sbatch_output(result.stdout)
        except ValueError as err:
            raise WorkflowError(
                f"sbatch accepted the job of rule {rule} but printed no job id "
                f"(command: {shlex.join(argv)}; output: {result.output!r})"
            ) from err
        logfile = output.replace("%j", jobid)
        self._info(
            f"Submitted job {job.jobid} ({rule}) as Slurm job {jobid}"
            f"{'' if cluster else ' (no Kind cluster)'}; log: {logfile}"
        )
        now = time.monotonic()
        due = now + self.settings.init_seconds_before_status_checks
        self._wake_at = due if self._wake_at is None else min(self._wake_at, due)
        self.report_job_submission(
            SubmittedJobInfo(
                job,
                external_jobid=jobid,
                aux={"logfile": logfile, "log_dir": log_dir, "submitted": now, "missing": None},
            )
        )

    def _partition_limits(self) -> dict[str, Partition]:
        """Every partition's time limits, asked of sinfo once per run ({} when
        sinfo cannot say: the full grace is asked for, as before)."""
        if self._partitions is None:
            self._partitions = {}
            try:
                result = process.run(build_sinfo_partitions_argv(), timeout=60)
                self._partitions = parse_sinfo_partitions(result.stdout)
            except process.CommandError as err:
                self.logger.debug(f"partition time limits unknown: {err.describe()}")
        return self._partitions

    def _tell_about_short_limit(self, rule: str, limit: int | None, by_default: bool) -> None:
        """Once per rule: its time limit is too short for Slurm's time-limit warning."""
        if limit is None or rule in self._told_short_limits:
            return
        if time_limit_warning(self.settings.cleanup_grace_seconds, limit) is not None:
            return
        self._told_short_limits.add(rule)
        origin = " (its partition's default; set the resource runtime)" if by_default else ""
        self._info(
            f"rule {rule}: runtime {limit // 60} min{origin} is too short for a time-limit warning "
            f"(Slurm may send it up to {SIGNAL_EARLY_SECONDS} s early, which could end "
            "the job as it starts); if the job reaches its limit, its cluster is "
            "deleted on Slurm's SIGTERM instead, within Slurm's KillWait"
        )

    def _runner_spec(
        self,
        rule: str,
        resources: Mapping[str, Any],
        cluster: bool,
        workdir: str,
        log_dir: str,
    ) -> RunnerSpec:
        s = self.settings
        rule_config = resources.get("kind_config")
        if rule_config:
            rule_config = os.path.abspath(str(rule_config))
            if not os.path.isfile(rule_config):
                raise WorkflowError(
                    f"rule {rule}: resource kind_config={resources['kind_config']!r}: "
                    "no such file (paths are relative to the working directory)"
                )
        kind_config = (
            os.path.abspath(os.path.expanduser(os.path.expandvars(s.kind_config)))
            if s.kind_config
            else None
        )
        if cluster:
            self._check_kind_config(rule, workdir, kind_config, rule_config or None)
        preload = split_image_list(s.preload_images) + split_image_list(
            resources.get("kind_preload_images")
        )
        return RunnerSpec(
            cluster=cluster,
            preload_images=tuple(dict.fromkeys(preload)),
            workdir=workdir,
            node_image=str(resources.get("kind_node_image") or s.node_image or "") or None,
            kind_config=kind_config,
            rule_kind_config=rule_config or None,
            provider=s.provider,
            kind_bin=s.kind_path,
            kubectl_bin=s.kubectl_path,
            runtime_bin=s.runtime_path or s.provider,
            create_timeout=float(s.create_timeout),
            # Both must fit in the grace Slurm gives before its hard kill.
            workload_term_timeout=max(1.0, min(10.0, s.cleanup_grace_seconds / 4)),
            delete_timeout=max(5.0, s.cleanup_grace_seconds / 2),
            keep_on_failure=s.keep_cluster_on_failure,
            log_dir=log_dir,
            create_lock=s.create_lock,
            preflight=not s.skip_preflight,
        )

    def _check_kind_config(
        self, rule: str, workdir: str, user: str | None, per_rule: str | None
    ) -> None:
        """Refuse a bad Kind config at submission instead of in every job."""
        key = (workdir, user, per_rule)
        if key in self._checked_configs:
            return
        from .kind.config import KindConfigError, build_kind_config

        try:
            build_kind_config(workdir, user, per_rule)
        except KindConfigError as err:
            raise WorkflowError(f"rule {rule}: invalid Kind config: {err}") from err
        self._checked_configs.add(key)

    # ------------------------------------------------------------------ status
    def _query(self) -> dict[str, JobState] | None:
        """One status query for every job of the run; None if it failed."""
        since = self.run_started - timedelta(minutes=10)
        if self.status_command == "sacct":
            argv = build_sacct_argv("sacct", self.run_name, since)
            parse = parse_sacct
        else:
            argv = build_squeue_argv("squeue", self.run_name, self.user)
            parse = parse_squeue
        self.status_queries += 1
        try:
            result = process.run(argv, timeout=60)
        except process.CommandError as err:
            if self.status_command == "sacct" and self.settings.status_command == "auto":
                self.logger.warning(
                    "kindslurm: sacct failed, using squeue for job status from now on "
                    f"(set --kindslurm-status-command squeue to skip sacct):\n{err.describe()}"
                )
                self.status_command = "squeue"
            else:
                self.logger.warning(f"kindslurm: status query failed, will retry:\n{err}")
            return None
        return parse(result.stdout)

    async def check_active_jobs(
        self, active_jobs: list[SubmittedJobInfo]
    ) -> AsyncGenerator[SubmittedJobInfo, None]:
        if not active_jobs:
            # Nothing to ask Slurm; look again soon (a round without jobs is free).
            self._wake_at = None
            self.next_seconds_between_status_checks = MIN_INTERVAL
            return
        now = time.monotonic()
        self._wake_at = None
        first_check = self.settings.init_seconds_before_status_checks
        due = [j for j in active_jobs if now - j.aux["submitted"] >= first_check]
        young = [j for j in active_jobs if now - j.aux["submitted"] < first_check]
        for job_info in young:
            yield job_info
        if young:
            wake = min(j.aux["submitted"] for j in young) + first_check
            self._wake_at = wake
        if not due:
            self._interval = MIN_INTERVAL
            self.next_seconds_between_status_checks = MIN_INTERVAL
            return

        states = await asyncio.to_thread(self._query)
        if states is not None:
            self._last_answer = now
        elif now - self._last_answer > self.settings.missing_job_timeout:
            # Never hang on a Slurm that stopped answering: give up on the jobs.
            for job_info in due:
                self._report_missing(job_info)
            return
        overdue: list[SubmittedJobInfo] = []
        for job_info in due:
            if states is None:
                yield job_info
                continue
            state = states.get(str(job_info.external_jobid))
            if state is None:
                if self._missing_too_long(job_info, now):
                    overdue.append(job_info)
                else:
                    yield job_info
                continue
            if await self._act(job_info, state):
                yield job_info
        if overdue:
            # sacct does not list held jobs or jobs whose --begin is still ahead;
            # squeue does. Ask it before giving a job up (rare: once per
            # missing-job timeout at most); a squeue round has asked already.
            ask_squeue = self.status_command == "sacct"
            queued = await asyncio.to_thread(self._query_squeue, overdue) if ask_squeue else {}
            for job_info in overdue:
                state = queued.get(str(job_info.external_jobid))
                if state is None:
                    self._report_missing(job_info, squeue_too=ask_squeue)
                    continue
                if await self._act(job_info, state):
                    yield job_info
        youngest = min(now - j.aux["submitted"] for j in due)
        self._interval = next_status_interval(youngest, self.settings.max_status_interval)
        self.next_seconds_between_status_checks = self._interval

    async def _act(self, job_info: SubmittedJobInfo, state: JobState) -> bool:
        """Act on the state Slurm gave for a job; True while it is still active."""
        job_info.aux["missing"] = None
        never = state.never_starts
        if never is not None:
            await asyncio.to_thread(self._fail_never_starts, job_info, state.reason, *never)
            return False
        return self._settle(job_info, state)

    def _settle(self, job_info: SubmittedJobInfo, state: JobState) -> bool:
        """Report a job that ended (True while it is active)."""
        outcome = state.outcome
        if outcome is None:
            if state.state not in self._warned_states:
                self._warned_states.add(state.state)
                self.logger.warning(
                    f"kindslurm: Slurm reports state {state.raw_state!r} which this "
                    "plugin does not know; the job is treated as still running."
                )
            return True
        if outcome is Outcome.RUNNING:
            return True
        if outcome is Outcome.SUCCESS:
            self._finish_success(job_info)
        else:
            self._finish_failure(job_info, state)
        return False

    def _query_squeue(self, jobs: list[SubmittedJobInfo]) -> dict[str, JobState]:
        """squeue's word on jobs sacct has not listed for too long ({} if it fails)."""
        ids = [str(j.external_jobid) for j in jobs]
        self.status_queries += 1
        try:
            result = process.run(build_squeue_jobs_argv("squeue", ids), timeout=60, check=False)
        except process.CommandError as err:
            self.logger.warning(f"kindslurm: squeue failed:\n{err.describe()}")
            return {}
        if not squeue_answered(result.returncode, result.output):
            return {}
        return {k: v for k, v in parse_squeue(result.stdout).items() if k in ids}

    def _missing_too_long(self, job_info: SubmittedJobInfo, now: float) -> bool:
        if job_info.aux["missing"] is None:
            job_info.aux["missing"] = now
        missing_for: float = now - job_info.aux["missing"]
        return missing_for > self.settings.missing_job_timeout

    def _report_missing(self, job_info: SubmittedJobInfo, squeue_too: bool = False) -> None:
        jobid = job_info.external_jobid
        asked = self.status_command + (" (nor by squeue)" if squeue_too else "")
        self.report_job_error(
            job_info,
            msg=(
                f"Slurm job {jobid} was not listed by {asked} "
                f"for more than {self.settings.missing_job_timeout:g} s, so its outcome is unknown "
                f"(check `sacct -j {jobid}`; raise --kindslurm-missing-job-timeout if "
                f"accounting lags on this cluster). Log: {job_info.aux['logfile']}. "
            ),
            aux_logs=[job_info.aux["logfile"]],
        )

    def _fail_never_starts(
        self, job_info: SubmittedJobInfo, reason: str, why: str, fix: str
    ) -> None:
        """A job Slurm keeps pending for a reason waiting cannot cure (it asks
        for more than the partition has, say) would hang the workflow: cancel
        it and fail it with the reason and the fix."""
        jobid = str(job_info.external_jobid)
        try:
            process.run(build_scancel_argv("scancel", [jobid]), timeout=60)
            cancelled = "kindslurm cancelled it"
        except process.CommandError as err:
            cancelled = f"cancelling it failed ({err.describe()}); run `scancel {jobid}`"
        self.report_job_error(
            job_info,
            msg=(
                f"Slurm will never start job {jobid} as submitted: it is pending with reason "
                f"{reason}: {why}; {cancelled}. Fix: {fix}. "
            ),
            aux_logs=[],  # it never ran, so it wrote no log
        )

    def _finish_success(self, job_info: SubmittedJobInfo) -> None:
        self.report_job_success(job_info)
        if not self.settings.keep_successful_logs:
            remove_log(job_info.aux["logfile"], self.logdir)

    def _finish_failure(self, job_info: SubmittedJobInfo, state: JobState) -> None:
        logfile = job_info.aux["logfile"]
        aux_logs = [logfile]
        kind_logs = sorted(
            glob.glob(os.path.join(job_info.aux["log_dir"], f"kind-logs-*{state.jobid}*"))
        )
        aux_logs.extend(kind_logs)
        self.report_job_error(
            job_info, msg=describe_failure(state, logfile) + " ", aux_logs=aux_logs
        )

    async def sleep(self) -> None:
        """Sleep until the next round, but wake early for a newly submitted job
        whose first check is due, and stop at once when Snakemake shuts down."""
        deadline = time.monotonic() + self.next_seconds_between_status_checks
        while True:
            now = time.monotonic()
            if now >= deadline or not self.wait:
                return
            if self._wake_at is not None and now >= self._wake_at:
                return
            await asyncio.sleep(min(0.2, deadline - now))

    # ------------------------------------------------------------------ cancel
    def cancel_jobs(self, active_jobs: list[SubmittedJobInfo]) -> None:
        jobids = [str(j.external_jobid) for j in active_jobs if j.external_jobid]
        if not jobids:
            return
        try:
            process.run(build_scancel_argv("scancel", jobids), timeout=60)
        except process.CommandError as err:
            self.logger.error(
                f"kindslurm: could not cancel Slurm jobs {' '.join(jobids)}:\n{err.describe()}\n"
                f"Cancel them by hand: scancel --name={self.run_name}"
            )
        else:
            self._info(f"kindslurm: cancelled Slurm jobs {' '.join(jobids)}")

    def get_python_executable(self) -> str:
        return sys.executable


def job_environment(
    environ: Mapping[str, str], provider: str, runtime_host: str | None
) -> dict[str, str]:
    """What sbatch passes on to the job: ours minus SLURM_*/SBATCH_*, plus the
    runtime service of --kindslurm-runtime-host as CONTAINER_HOST/DOCKER_HOST. Pure."""
    env = clean_slurm_environment(environ)
    if runtime_host:
        env[service_variable(provider)] = runtime_host
    return env


def remove_log(logfile: str, logdir: str) -> None:
    """Delete a successful job's log and the directories it leaves empty (up to logdir)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(logfile)
    directory = os.path.dirname(logfile)
    logdir = os.path.abspath(logdir)
    while directory.startswith(logdir + os.sep):
        try:
            os.rmdir(directory)
        except OSError:
            break
        directory = os.path.dirname(directory)
