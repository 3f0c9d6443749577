"""The Kind lifecycle runner: the process Slurm starts for every job.

    python -m snakemake_executor_plugin_kindslurm.runner --spec '<RunnerSpec JSON>' -- ARGV...

With `cluster: true` it creates a throw-away Kind cluster, runs ARGV with
K8S_CLUSTER_NAME, KUBECONFIG, KIND_EXPERIMENTAL_PROVIDER and KINDSLURM_APP_DIR
set (the working directory is mounted at /app in every node), and always
deletes the cluster afterwards. With `cluster: false` it only runs ARGV. Either
way it exits with ARGV's exit code, or with one of its own (spec.EXIT_*), or
with 128+N after signal N.

Signals: the job script `exec`s the runner, so Slurm's `--signal=B:USR1@grace`
(the time-limit warning), scancel and Ctrl-C reach the runner itself. SIGTERM,
SIGINT, SIGHUP and SIGUSR1 are turned into "stop": the foreground child (kind
create, kind load or the workload, each in its own session) gets SIGTERM on its
whole process group,
then SIGKILL after a bounded wait, and the cluster is deleted. A second signal
kills the foreground child at once; a signal during cleanup is logged and
cleanup goes on.

keep_on_failure keeps the cluster only when the workload itself failed (exit
code != 0 without a signal): a signal means Slurm is ending the job, and
root Podman containers outlive the job's cgroup, so they are never kept then.

This module is imported on every job, clustered or not: the kind modules (and
PyYAML) are imported only when a cluster is wanted.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from . import process
from .spec import (
    EXIT_BAD_CONFIG,
    EXIT_CLEANUP_FAILED,
    EXIT_CLUSTER_CREATE_FAILED,
    EXIT_PREFLIGHT_FAILED,
    RunnerSpec,
)

if TYPE_CHECKING:
    from .kind.cluster import CleanupCommand, CommandOutcome

# SIGUSR1 is the time-limit warning (sbatch --signal=B:USR1@grace): it stops the
# workload and deletes the cluster like the others, and then the runner waits
# for Slurm's own kill at the time limit, so the job is recorded as TIMEOUT
# (exiting earlier would record FAILED and hide why the job ended).
TIME_LIMIT_SIGNAL = signal.SIGUSR1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, TIME_LIMIT_SIGNAL)
# How long the runner waits, after cleaning up for the time-limit warning, for
# Slurm to end the job (the warning comes at most the grace plus Slurm's
# ~60 s signal granularity early).
TIME_LIMIT_WAIT_MAX = 900.0
# kind create / kind load get this long after SIGTERM (they stop at once).
KIND_KILL_AFTER = 5.0
# Background processes the workload leaves behind get this long after SIGTERM.
LEFTOVER_KILL_AFTER = 2.0
_MAX_COMMAND_LOG = 500
_MAX_OUTPUT_LINES = 40

USAGE = (
    "usage: python -m snakemake_executor_plugin_kindslurm.runner "
    "--spec '<RunnerSpec JSON>' -- COMMAND [ARG...]"
)


# ---------------------------------------------------------------- logging ---


def format_log_line(phase: str, message: str, duration: float | None, now: datetime) -> str:
    """`[kindslurm <ISO time>] <phase>: message (N.NN s)`. Pure.

    The duration ends the first line; further lines (quoted output) are indented.
    """
    stamp = now.isoformat(timespec="seconds")
    first, *rest = message.split("\n")
    if duration is not None:
        first += f" ({duration:.2f} s)"
    return "\n    ".join([f"[kindslurm {stamp}] {phase}: {first}", *rest]) + "\n"


def log(phase: str, message: str, duration: float | None = None) -> None:
    """One log line to stderr (the Slurm job log).

    os.write, not sys.stderr: it is also called from signal handlers, where a
    buffered stream may be in the middle of a write.
    """
    line = format_log_line(phase, message, duration, datetime.now().astimezone())
    with contextlib.suppress(OSError):
        os.write(2, line.encode(errors="replace"))


def _clip_command(argv: Sequence[str]) -> str:
    text = shlex.join(argv)
    return text if len(text) <= _MAX_COMMAND_LOG else text[:_MAX_COMMAND_LOG] + " [...]"


def _tail(text: str, lines: int = _MAX_OUTPUT_LINES) -> str:
    kept = [line.rstrip() for line in text.strip().splitlines()][-lines:]
    return "\n".join(kept)


# ---------------------------------------------------------------- signals ---


class SignalGuard:
    """Turns SIGTERM/SIGINT/SIGHUP into a recorded stop request.

    The handlers never raise: they record the first signal, signal the
    registered foreground child's process group, and arm SIGALRM to SIGKILL
    it after its grace. The main code notices `received` between steps.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0
        self.phase = "runner"
        self.in_cleanup = False
        self._child: int | None = None
        self._kill_after = KIND_KILL_AFTER
        self._saved: dict[int, signal.Handlers | int | object | None] = {}

    def __enter__(self) -> SignalGuard:
        for signum in (*STOP_SIGNALS, signal.SIGALRM):
            handler = self._on_alarm if signum == signal.SIGALRM else self._on_stop
            self._saved[signum] = signal.signal(signum, handler)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    @property
    def stopping(self) -> bool:
        return self.received is not None

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        """A signal during cleanup is only logged: it neither stops the cleanup
        nor changes the exit code (the workload's result stands)."""
        self.count += 1
        name = signal.Signals(signum).name
        if self.in_cleanup:
            log(self.phase, f"received {name} during cleanup: cleanup goes on")
            return
        if self.received is not None:
            if self._child is not None:
                log(self.phase, f"received {name} again: killing the {self.phase} now")
                process.signal_group(self._child, signal.SIGKILL)
            else:
                log(self.phase, f"received {name} again: already stopping")
            return
        self.received = signum
        log(self.phase, f"received {name}: stopping, then cleaning up")
        self._forward()

    def _forward(self) -> None:
        if self._child is None:
            return
        if process.signal_group(self._child, signal.SIGTERM):
            signal.setitimer(signal.ITIMER_REAL, max(self._kill_after, 0.01))

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self._child is not None and process.signal_group(self._child, signal.SIGKILL):
            log(self.phase, f"the {self.phase} did not stop within {self._kill_after:g} s: SIGKILL")

    def wait(
        self, proc: subprocess.Popen[bytes], *, kill_after: float, timeout: float | None = None
    ) -> int | None:
        """Wait for proc (leader of its own group) as the foreground child.

        Returns its exit code (128+N when killed by signal N), or None when
        timeout passed (the caller ends it).
        """
        self._child = proc.pid
        self._kill_after = kill_after
        try:
            if self.received is not None:
                self._forward()  # the signal came before the child was registered
            try:
                returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                return None
        finally:
            self._child = None
            signal.setitimer(signal.ITIMER_REAL, 0)
        return exit_code_of(returncode)


def exit_code_of(returncode: int) -> int:
    """Popen's -N (killed by signal N) as the shell's 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def decide_exit_code(
    *,
    signum: int | None,
    setup_code: int | None,
    workload_code: int | None,
    cleanup_ok: bool,
) -> int:
    """The runner's exit code. Pure.

    A signal wins (128+N); then a setup failure (117/118/119); then a failed
    workload's own code (a cleanup failure must not hide it; it is logged);
    then a cleanup failure after a successful workload (120).
    """
    if signum is not None:
        return 128 + signum
    if setup_code is not None:
        return setup_code
    if workload_code is None:
        return EXIT_CLUSTER_CREATE_FAILED
    if workload_code != 0:
        return workload_code
    if not cleanup_ok:
        return EXIT_CLEANUP_FAILED
    return 0


# ------------------------------------------------------------ environment ---


def build_workload_env(
    environ: Mapping[str, str], cluster_name: str, kubeconfig: str, provider: str, workdir: str
) -> dict[str, str]:
    """The workload's environment: ours plus the cluster's coordinates. Pure."""
    env = dict(environ)
    env["K8S_CLUSTER_NAME"] = cluster_name
    env["KUBECONFIG"] = kubeconfig
    env["KIND_EXPERIMENTAL_PROVIDER"] = provider
    env["KINDSLURM_APP_DIR"] = workdir
    return env


@dataclass(frozen=True)
class ForegroundResult:
    returncode: int | None  # None: timed out, or stopped by a signal before an exit
    output: str
    timed_out: bool = False


def run_foreground(
    signals: SignalGuard,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,
    output_path: Path,
    cwd: str | None = None,
) -> ForegroundResult:
    """Run a kind command as the interruptible foreground child, output to a file."""
    with open(output_path, "wb") as out:
        proc = process.spawn(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        code = signals.wait(proc, kill_after=KIND_KILL_AFTER, timeout=timeout)
        timed_out = code is None
        if timed_out:
            process.terminate_group(proc.pid, timeout=KIND_KILL_AFTER)
            proc.wait()
        # kind's helpers (podman logs -f) must not outlive it.
        process.terminate_group(proc.pid, timeout=KIND_KILL_AFTER)
    output = output_path.read_text(errors="replace")
    return ForegroundResult(code, output, timed_out)


# --------------------------------------------------------- no cluster: run ---


def _run_workload(
    signals: SignalGuard, spec: RunnerSpec, argv: Sequence[str], env: Mapping[str, str], cwd: str
) -> int:
    signals.phase = "workload"
    log("workload", f"running {_clip_command(argv)}")
    start = time.monotonic()
    try:
        proc = process.spawn(argv, env=env, cwd=cwd)
    except process.CommandNotFoundError as err:
        log("workload", f"cannot start it: {err.reason}: {err.stderr}")
        return 127 if err.reason == "program not found" else 126
    except OSError as err:  # e.g. the working directory is gone
        log("workload", f"cannot start it: {err}")
        return 126
    code = signals.wait(proc, kill_after=spec.workload_term_timeout)
    assert code is not None  # no timeout given
    process.terminate_group(proc.pid, timeout=LEFTOVER_KILL_AFTER)
    log("workload", f"exited with code {code}", time.monotonic() - start)
    return code


def _run_without_cluster(signals: SignalGuard, spec: RunnerSpec, argv: Sequence[str]) -> int:
    code = _run_workload(signals, spec, argv, os.environ, spec.workdir)
    return 128 + signals.received if signals.received is not None else code


# ------------------------------------------------------- cluster lifecycle ---


class _ClusterLifecycle:
    """One clustered run: setup, workload, teardown. run() never raises."""

    def __init__(
        self,
        spec: RunnerSpec,
        argv: Sequence[str],
        environ: Mapping[str, str],
        signals: SignalGuard,
    ) -> None:
        self.spec = spec
        self.argv = list(argv)
        self.environ = dict(environ)
        self.signals = signals
        self.workdir = os.path.abspath(spec.workdir)
        self.name = ""
        self.tempdir: Path | None = None
        self.kubeconfig = ""
        self.record_path: Path | None = None
        self.node_names: tuple[str, ...] = ()
        self.create_started = False
        self.create_ok = False
        self.workload_code: int | None = None
        self.created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- the whole run
    def run(self) -> int:
        setup_code: int | None = None
        try:
            setup_code = self._setup_and_run()
        except Exception as err:  # a bug or an unexpected OS error: still clean up
            phase = self.signals.phase
            log(phase, f"internal error: {err!r}\n{traceback.format_exc().rstrip()}")
            if self.workload_code is None:
                setup_code = EXIT_CLUSTER_CREATE_FAILED
        finally:
            cleanup_ok = self._teardown()
        return decide_exit_code(
            signum=self.signals.received,
            setup_code=setup_code,
            workload_code=self.workload_code,
            cleanup_ok=cleanup_ok,
        )

    def _setup_and_run(self) -> int | None:
        """Returns a setup exit code, or None when the workload ran (or a signal stopped us)."""
        from .kind import config as kind_config
        from .kind import naming

        self.signals.phase = "create"
        try:
            config = kind_config.build_kind_config(
                self.workdir, self.spec.kind_config, self.spec.rule_kind_config
            )
        except kind_config.KindConfigError as err:
            log("create", f"{err}\n  fix: correct the file; nothing was created")
            return EXIT_BAD_CONFIG
        if self.spec.preflight:
            code = self._preflight()
            if code is not None:
                return code
        if self.signals.stopping:
            return None

        self.name = naming.build_cluster_name(
            naming.slurm_job_id(self.environ), naming.random_suffix()
        )
        self.node_names = tuple(naming.build_node_names(self.name, kind_config.node_roles(config)))
        try:
            self._make_tempdir(kind_config.render_kind_config(config))
        except OSError as err:
            base = self.environ.get("TMPDIR") or "/tmp"
            log(
                "create",
                f"cannot make the job's private temp dir under {base}: {err}\n"
                "  fix: point TMPDIR at a writable directory with free space",
            )
            return EXIT_CLUSTER_CREATE_FAILED
        self._write_record()
        if self.signals.stopping:
            return None

        code = self._create()
        if code is not None or self.signals.stopping:
            return code

        env = build_workload_env(
            self.environ, self.name, self.kubeconfig, self.spec.provider, self.workdir
        )
        self.workload_code = _run_workload(self.signals, self.spec, self.argv, env, self.workdir)
        return None

    # -- setup steps
    def _preflight(self) -> int | None:
        from .kind import preflight

        self.signals.phase = "preflight"
        start = time.monotonic()
        results = preflight.run_preflight(self.spec, self.environ)
        took = time.monotonic() - start
        counts = {s: sum(r.status is s for r in results) for s in preflight.Status}
        summary = ", ".join(f"{counts[s]} {s.value}" for s in preflight.Status)
        for result in results:
            if result.status is not preflight.Status.OK:
                log("preflight", result.describe())
        self.signals.phase = "create"
        if preflight.preflight_failed(results):
            log("preflight", f"this node is not ready for Kind: {summary}; nothing created", took)
            return EXIT_PREFLIGHT_FAILED
        log("preflight", summary, took)
        return None

    def _make_tempdir(self, config_text: str) -> None:
        import tempfile

        from .kind import cluster, naming

        base = self.environ.get("TMPDIR") or None
        self.tempdir = Path(tempfile.mkdtemp(prefix=f"kindslurm-{self.name}-", dir=base))
        self.kubeconfig = str(self.tempdir / "kubeconfig")
        (self.tempdir / "kind-config.yaml").write_text(config_text)
        real_runtime = self._real_runtime()
        if real_runtime:
            labels = naming.build_labels(
                self.name,
                naming.slurm_job_id(self.environ),
                _user_name(),
                self.created,
                os.uname().nodename,
            )
            cluster.install_runtime_shim(
                self.tempdir / "bin", self.spec.provider, real_runtime, labels
            )

    def _real_runtime(self) -> str | None:
        import shutil

        return shutil.which(self.spec.runtime_bin, path=self.environ.get("PATH"))

    def _write_record(self) -> None:
        from .kind import cluster, naming

        assert self.tempdir is not None
        uid = os.getuid()
        record = naming.StateRecord(
            name=self.name,
            slurm_job_id=naming.slurm_job_id(self.environ),
            user=_user_name(),
            uid=uid,
            host=os.uname().nodename,
            created=self.created,
            kubeconfig=self.kubeconfig,
            tempdir=str(self.tempdir),
            runner_pid=os.getpid(),
            provider=self.spec.provider,
            runtime=self.spec.runtime_bin,
            runtime_service=cluster.runtime_service(self.spec.provider, self.environ) or "",
        )
        path = naming.state_record_path(self.environ, uid, self.name)
        try:
            naming.write_state_record(path, record)
            self.record_path = path
        except OSError as err:
            log("create", f"warning: cannot write the state record {path}: {err}")

    def _kind_env(self, with_shim: bool) -> dict[str, str]:
        from .kind import cluster

        shim = str(self.tempdir / "bin") if with_shim and self.tempdir else None
        return cluster.build_kind_env(self.environ, self.spec.provider, shim)

    def _create(self) -> int | None:
        from .kind import cluster, kubeconfig, lock

        assert self.tempdir is not None
        spec = self.spec
        self.signals.phase = "create"
        start = time.monotonic()
        image = f", image {spec.node_image}" if spec.node_image else ""
        nodes = len(self.node_names)
        log("create", f"cluster {self.name} ({nodes} node{'s' if nodes != 1 else ''}{image})")
        argv = cluster.build_create_argv(
            spec.kind_bin,
            self.name,
            str(self.tempdir / "kind-config.yaml"),
            self.kubeconfig,
            spec.node_image,
        )
        try:
            with self._create_lock() as waited:
                if waited > 0.5:
                    log("create", f"waited for the create lock {lock.DEFAULT_LOCK_PATH}", waited)
                if spec.provider == "podman":
                    cluster.ensure_kind_network(spec.runtime_bin, self._kind_env(False))
                if self.signals.stopping:
                    return None
                log("create", _clip_command(argv))
                self.create_started = True
                result = run_foreground(
                    self.signals,
                    argv,
                    env=self._kind_env(True),
                    timeout=spec.create_timeout,
                    output_path=self.tempdir / "kind-create.log",
                    cwd=self.workdir,
                )
        except lock.LockInterrupted as err:
            if self.signals.stopping:
                return None
            log("create", f"cluster {self.name} not created: {err}", time.monotonic() - start)
            return EXIT_CLUSTER_CREATE_FAILED
        except process.CommandError as err:
            log("create", f"cluster {self.name} not created:\n{err.describe()}")
            return EXIT_CLUSTER_CREATE_FAILED
        took = time.monotonic() - start
        if self.signals.stopping:
            log("create", f"kind create of {self.name} stopped by the signal", took)
            return None
        if result.returncode != 0:
            why = (
                f"timed out after {spec.create_timeout:g} s"
                if result.timed_out
                else f"exit code {result.returncode}"
            )
            log(
                "create",
                f"kind create cluster failed ({why}): {_clip_command(argv)}\n"
                f"kind's output:\n{_tail(result.output)}",
                took,
            )
            self._export_logs()
            return EXIT_CLUSTER_CREATE_FAILED
        try:
            kubeconfig.ensure_cluster_context(self.kubeconfig, self.name)
        except kubeconfig.KubeconfigError as err:
            log("create", f"cluster {self.name} created, but its kubeconfig is unusable: {err}")
            return EXIT_CLUSTER_CREATE_FAILED
        self.create_ok = True
        log("create", f"cluster {self.name} ready; KUBECONFIG={self.kubeconfig}", took)
        return self._preload_images()

    def _create_lock(self) -> contextlib.AbstractContextManager[float]:
        """The per-node lock around kind create, if asked for; gives up on a signal."""
        from .kind import lock

        if not self.spec.create_lock:
            return contextlib.nullcontext(0.0)
        return lock.create_lock(
            timeout=self.spec.create_timeout, cancelled=lambda: self.signals.stopping
        )

    def _preload_images(self) -> int | None:
        """Load spec.preload_images into the nodes before the workload starts.

        kind's `load docker-image` asks a `docker` CLI for the image even with
        the Podman provider, so with Podman an image name is first saved to an
        archive in the job's temp dir and loaded as one.
        """
        from .kind import cluster, preflight

        assert self.tempdir is not None
        spec = self.spec
        for index, image in enumerate(spec.preload_images):
            archive: str | None = None
            saved = False
            steps: list[list[str]] = []
            if preflight.is_image_archive(image) or os.path.isfile(
                os.path.join(self.workdir, image)
            ):
                archive = image
            elif spec.provider == "podman":
                archive, saved = str(self.tempdir / f"preload-{index}.tar"), True
                steps.append([spec.runtime_bin, "save", "-o", archive, image])
            steps.append(
                cluster.build_load_argv(
                    spec.kind_bin, self.name, archive or image, archive=archive is not None
                )
            )
            start = time.monotonic()
            for argv in steps:
                if self.signals.stopping:
                    return None
                result = run_foreground(
                    self.signals,
                    argv,
                    env=self._kind_env(False),
                    timeout=cluster.LOAD_TIMEOUT,
                    output_path=self.tempdir / "kind-load.log",
                    cwd=self.workdir,
                )
                if self.signals.stopping:
                    return None
                if result.returncode != 0:
                    log(
                        "create",
                        f"loading image {image} failed: {_clip_command(argv)}\n"
                        f"{_tail(result.output)}",
                        time.monotonic() - start,
                    )
                    return EXIT_CLUSTER_CREATE_FAILED
            if saved and archive is not None:
                with contextlib.suppress(OSError):
                    os.unlink(archive)  # a copy in the node now; the temp dir may be small
            log("create", f"loaded image {image}", time.monotonic() - start)
        return None

    def _export_logs(self) -> None:
        """Save kind's node logs before the nodes are deleted (only if a node exists)."""
        from .kind import cluster

        if not self.spec.log_dir:
            return
        start = time.monotonic()
        env = self._kind_env(False)
        try:
            nodes = cluster.list_node_containers(self.spec.runtime_bin, self.name, env)
            if not nodes:
                log("create", "no node container left: no kind logs to export")
                return
            os.makedirs(self.spec.log_dir, exist_ok=True)
            dest = os.path.join(self.spec.log_dir, f"kind-logs-{self.name}")
            process.run_isolated(
                cluster.build_export_logs_argv(self.spec.kind_bin, self.name, dest),
                timeout=cluster.EXPORT_LOGS_TIMEOUT,
                env=env,
            )
        except (process.CommandError, OSError) as err:
            log("create", f"could not export kind logs: {err}", time.monotonic() - start)
            return
        log("create", f"kind logs exported to {dest}", time.monotonic() - start)

    # -- teardown
    def _keep_cluster(self) -> bool:
        return (
            self.spec.keep_on_failure
            and self.create_ok
            and self.signals.received is None
            and self.workload_code not in (None, 0)
        )

    def _teardown(self) -> bool:
        """Delete the cluster and our files; True when nothing is left. Never raises."""
        self.signals.in_cleanup = True
        self.signals.phase = "delete"
        if self.tempdir is None:
            return True
        try:
            if self._keep_cluster():
                self._explain_kept()
                return True
            ok = True
            if self.create_started:
                log("delete", f"deleting cluster {self.name}")
                ok = self._delete_cluster()
            return self._remove_files() and ok
        except Exception as err:  # never let cleanup raise past the runner
            log("delete", f"internal error during cleanup: {err!r}\n{traceback.format_exc()}")
            return False

    def _delete_cluster(self) -> bool:
        from .kind import cluster

        plan = cluster.CleanupPlan(
            cluster_name=self.name,
            kind_bin=self.spec.kind_bin,
            runtime_bin=self.spec.runtime_bin,
            provider=self.spec.provider,
            kubeconfig=self.kubeconfig,
            node_names=self.node_names,
            delete_timeout=self.spec.delete_timeout,
            sweep=not self.create_ok,
        )
        start = time.monotonic()
        report = cluster.execute_cleanup(plan, env=self._kind_env(False), on_command=_log_cleanup)
        took = time.monotonic() - start
        if report.ok:
            how = " (with the fallback)" if report.fallback_used else ""
            log("delete", f"cluster {self.name} deleted{how}", took)
            return True
        log(
            "delete",
            f"cluster {self.name} may be left behind; first error:\n{report.problems[0]}\n"
            f"fix: KIND_EXPERIMENTAL_PROVIDER={self.spec.provider} "
            f"{self.spec.kind_bin} delete cluster --name {self.name}",
            took,
        )
        return False

    def _remove_files(self) -> bool:
        import shutil

        ok = True
        if self.tempdir is not None:
            try:
                shutil.rmtree(self.tempdir)
            except FileNotFoundError:
                pass
            except OSError as err:
                log("delete", f"cannot remove {self.tempdir}: {err}")
                ok = False
        if self.record_path is not None:
            try:
                self.record_path.unlink(missing_ok=True)
            except OSError as err:
                log("delete", f"cannot remove the state record {self.record_path}: {err}")
                ok = False
        return ok

    def _explain_kept(self) -> None:
        spec = self.spec
        log(
            "delete",
            f"keeping cluster {self.name}: the workload failed (exit {self.workload_code}) "
            "and keep_on_failure is set. Use it with:\n"
            f"  export KUBECONFIG={self.kubeconfig}; kubectl --context {self.name} get pods -A\n"
            "Delete it by hand when done:\n"
            f"  KIND_EXPERIMENTAL_PROVIDER={spec.provider} {spec.kind_bin} delete cluster "
            f"--name {self.name} --kubeconfig {self.kubeconfig}\n"
            f"  rm -rf {self.tempdir} {self.record_path or ''}".rstrip(),
        )


def _log_cleanup(command: CleanupCommand, outcome: CommandOutcome, took: float) -> None:
    from .kind import cluster

    if outcome.ok:
        log("delete", f"{_clip_command(command.argv)}: ok", took)
    else:
        log("delete", cluster.describe_failure(command, outcome), took)


def _user_name() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.getuid())


# -------------------------------------------------------------- entry point ---


def run_lifecycle(
    spec: RunnerSpec, argv: Sequence[str], *, environ: Mapping[str, str] | None = None
) -> int:
    """Run argv under spec (cluster or not) and return the exit code to exit with.

    Installs the SIGTERM/SIGINT/SIGHUP handlers for its duration (main thread
    only). This is what the job script runs and what `kindslurm run/up` call.
    """
    if not argv:
        log("runner", f"no command given\n{USAGE}")
        return EXIT_BAD_CONFIG
    env = dict(os.environ if environ is None else environ)
    with SignalGuard() as signals:
        if not spec.cluster:
            code = _run_without_cluster(signals, spec, argv)
        else:
            code = _ClusterLifecycle(spec, argv, env, signals).run()
        if signals.received == TIME_LIMIT_SIGNAL and env.get("SLURM_JOB_ID"):
            return await_time_limit(signals, code)
        return code


def await_time_limit(signals: SignalGuard, code: int, limit: float = TIME_LIMIT_WAIT_MAX) -> int:
    """After the time-limit warning: everything is cleaned up; let Slurm end the
    job at its limit (recorded as TIMEOUT) instead of exiting as FAILED."""
    log("runner", "time limit is near: cleaned up; waiting for Slurm to end the job")
    signals.in_cleanup = True  # further signals are logged only
    first = signals.count
    deadline = time.monotonic() + limit
    while signals.count == first and time.monotonic() < deadline:
        time.sleep(0.5)
    return code


def parse_runner_args(args: Sequence[str]) -> tuple[str, list[str]]:
    """`--spec JSON -- ARGV...` (also `--spec=JSON`) -> (spec JSON, ARGV). Pure."""
    spec_json: str | None = None
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            index += 1
            break
        if arg == "--spec" and index + 1 < len(args):
            spec_json = args[index + 1]
            index += 2
        elif arg.startswith("--spec="):
            spec_json = arg.split("=", 1)[1]
            index += 1
        else:
            raise ValueError(f"unexpected argument {arg!r}")
    else:
        raise ValueError("missing `--` before the command")
    if spec_json is None:
        raise ValueError("missing --spec")
    command = list(args[index:])
    if not command:
        raise ValueError("missing the command after `--`")
    return spec_json, command


def main(args: Sequence[str] | None = None) -> int:
    try:
        spec_json, argv = parse_runner_args(sys.argv[1:] if args is None else args)
        spec = RunnerSpec.from_json(spec_json)
    except (ValueError, TypeError) as err:
        log("runner", f"bad arguments: {err}\n{USAGE}")
        return EXIT_BAD_CONFIG
    return run_lifecycle(spec, argv)


if __name__ == "__main__":
    sys.exit(main())
