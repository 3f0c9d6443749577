"""`kindslurm`: throw-away Kind clusters on Slurm nodes, from the command line.

    kindslurm run [OPTIONS] SCRIPT [ARGS...]     run SCRIPT inside a new cluster, then delete it
    kindslurm up [OPTIONS] [-- SBATCH_OPTIONS]   start a cluster in a Slurm job for interactive use
    kindslurm down [NAME|JOBID]                  delete an `up` cluster (cancels its job)
    kindslurm list [--json] [--all-users]        this node's kindslurm clusters and their jobs
    kindslurm gc [--yes] [--all-users] [--job ID] [NAME...]
                                                 delete clusters whose job has ended (orphans)
    kindslurm doctor [--json]                    is this node ready for Kind?
    kindslurm ci-setup [--user NAME] [--kind] [--standin-image] [--podman-service]
                                                 install and start a single-node Slurm (CI)

Every command has `--help`. Cluster options (--node-image, --kind-config,
--provider, --kind-path, --kubectl-path, --runtime-path, --runtime-host,
--create-timeout, --keep-cluster-on-failure, --create-lock, --skip-preflight,
--preload-images) mean what the executor settings of the same names mean.

Exit codes: 0 success; `run` exits with SCRIPT's own code (128+N after
signal N); 1 an operation failed (the message shows the command and its
output); 2 usage error; 117 bad configuration, 118 preflight failed,
119 cluster creation failed, 120 cleanup failed (the runner's codes, passed
through by `run` and by `up` when its job failed with one of them).

`run` inside a batch job: the runner must be the batch shell itself, or
scancel and the time limit kill it before it can delete the cluster (when a
batch shell ends, Slurm kills what is left at once). Use `exec`, and let Slurm
warn the runner before the time limit (SIGUSR1 is the runner's time-limit
warning: it deletes the cluster, then lets the job end as TIMEOUT):

    sbatch --signal=B:USR1@60 --wrap 'exec kindslurm run workload.sh'

or, in a batch file: `#SBATCH --signal=B:USR1@60` and `exec kindslurm run
workload.sh`. Without --signal the runner still cleans up on the time limit's
SIGTERM, within Slurm's KillWait (30 s by default). `kindslurm run` warns when
it is not exec'd. Under `srun` and in a plain shell nothing special is needed
(Ctrl-C deletes the cluster too).

`up` and the API server: Kind publishes the API server on 127.0.0.1:<port>
of the compute node, and the kubeconfig `up` writes (~/.kube/kindslurm-<job
id>.yaml, mode 0600) keeps `server: https://127.0.0.1:<port>`, the address
in the server's certificate. On the node it works as is (`kindslurm up
--attach`, or srun --jobid=<id> --overlap --pty ...). From the login node,
forward the port first: `ssh -N -L <port>:127.0.0.1:<port> <node>`.
`up` prints both commands.

Administrators: kindslurm clusters in root's container storage (rootful
Podman/Docker) can be swept from a Slurm epilog, which runs as root while the
job is still COMPLETING (hence --job: that job counts as ended):

    #!/bin/sh
    # /etc/slurm/epilog.d/kindslurm.sh  (slurm.conf: Epilog=/etc/slurm/epilog.d/*)
    export PATH=/usr/local/bin:/usr/bin:/bin  # kind and podman; epilogs get no PATH
    job=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
    /opt/kindslurm/bin/kindslurm gc --yes --all-users --job "${job:-$SLURM_JOB_ID}"
    exit 0  # never drain the node over a cleanup problem; gc logged it

and from cron (`kindslurm gc --yes --all-users`, say every 10 minutes: without
--job a COMPLETING job still counts as alive). Rootless clusters live in their
user's own storage, which root's runtime does not see: sweep them as that
user, with the XDG_RUNTIME_DIR their jobs use, e.g.

    runuser -u "$SLURM_JOB_USER" -- env XDG_RUNTIME_DIR=/run/user/$SLURM_JOB_UID \\
        kindslurm gc --yes --job "${job:-$SLURM_JOB_ID}"
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pwd
import shlex
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, process
from .spec import EXIT_CODE_MEANINGS, RunnerSpec, split_image_list

if TYPE_CHECKING:
    from .clusters import Discovery

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
UP_WAIT_TIMEOUT = 300.0
DEFAULT_GRACE_SECONDS = 60  # as the executor's --kindslurm-cleanup-grace-seconds
DOWN_WAIT_TIMEOUT = 120.0

EPILOG = "\n".join(
    [
        "exit codes:",
        "  0    success",
        "  1    an operation failed (the message shows the command and its output)",
        "  2    usage error",
        *(f"  {code}  {meaning}" for code, meaning in sorted(EXIT_CODE_MEANINGS.items())),
        "       (117-120 come from the runner: `run`, and `up` when its job failed so)",
        "  run: otherwise SCRIPT's own exit code (128+N after signal N)",
        "",
        "In a batch job start `run` with exec and give cleanup time before the limit:",
        "  sbatch --signal=B:USR1@60 --wrap 'exec kindslurm run workload.sh'",
    ]
)


class CliError(Exception):
    """A failure to report as one message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


def usage_error(message: str) -> CliError:
    return CliError(message, EXIT_USAGE)


def command_failed(what: str, err: process.CommandError) -> CliError:
    """`what failed` on the first line, then the command, its output and the fix."""
    return CliError(f"{what}\n{err.describe()}")


def eprint(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(os.getuid())


# -------------------------------------------------------------- options ---


def _runtime_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("container runtime")
    group.add_argument(
        "--provider", choices=("podman", "docker"), default="podman",
        help="container runtime kind uses for its nodes (default: podman)",
    )  # fmt: skip
    group.add_argument("--kind-path", default="kind", help="the kind binary (default: kind)")
    group.add_argument(
        "--runtime-path", help="the podman/docker binary (default: the provider's name)"
    )
    group.add_argument(
        "--runtime-host", metavar="URL",
        help="a runtime service to use instead of the local runtime, e.g. "
        "unix:///run/podman-kind/podman.sock (sets CONTAINER_HOST, or DOCKER_HOST for docker)",
    )  # fmt: skip
    return parent


def _cluster_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False, parents=[_runtime_options()])
    group = parent.add_argument_group("cluster")
    group.add_argument("--node-image", help="Kind node image (default: kind's own)")
    group.add_argument("--kind-config", help="Kind cluster config merged into the generated one")
    group.add_argument(
        "--kubectl-path", default="kubectl", help="the kubectl binary (default: kubectl)"
    )
    group.add_argument(
        "--create-timeout", type=float, default=300.0,
        help="seconds `kind create cluster` may take (default: 300)",
    )  # fmt: skip
    group.add_argument(
        "--keep-cluster-on-failure", action="store_true",
        help="keep the cluster when the workload fails (not on signals)",
    )  # fmt: skip
    group.add_argument(
        "--create-lock", action="store_true",
        help="serialise `kind create` between jobs on this node",
    )  # fmt: skip
    group.add_argument(
        "--skip-preflight", action="store_true", help="skip the node checks before create"
    )
    group.add_argument(
        "--preload-images",
        help="comma-separated images (archives or local image names) loaded into the cluster",
    )
    return parent


def runtime_bin(args: argparse.Namespace) -> str:
    return str(args.runtime_path or args.provider)


def spec_from_args(args: argparse.Namespace, workdir: str, log_dir: str) -> RunnerSpec:
    kind_config = None
    if args.kind_config:
        kind_config = os.path.abspath(os.path.expanduser(args.kind_config))
        if not os.path.isfile(kind_config):
            raise usage_error(f"--kind-config {args.kind_config}: no such file")
    if args.create_timeout <= 0:
        raise usage_error("--create-timeout must be a positive number of seconds")
    return RunnerSpec(
        cluster=True,
        workdir=workdir,
        node_image=args.node_image or None,
        kind_config=kind_config,
        provider=args.provider,
        kind_bin=args.kind_path,
        kubectl_bin=args.kubectl_path,
        runtime_bin=runtime_bin(args),
        create_timeout=float(args.create_timeout),
        keep_on_failure=args.keep_cluster_on_failure,
        log_dir=log_dir,
        create_lock=args.create_lock,
        preflight=not args.skip_preflight,
        preload_images=tuple(dict.fromkeys(split_image_list(args.preload_images))),
    )


# ------------------------------------------------------------------- run ---


def script_argv(script: str, args: Sequence[str]) -> list[str]:
    """SCRIPT through its own shebang when executable, else `/bin/sh SCRIPT`;
    a name without a slash that is no file is looked up on PATH."""
    if os.path.isfile(script):
        path = os.path.abspath(script)
        if os.access(path, os.X_OK):
            return [path, *args]
        return ["/bin/sh", path, *args]
    if os.sep not in script:
        found = shutil.which(script)
        if found:
            return [found, *args]
    if os.path.isdir(script):
        raise usage_error(f"{script} is a directory, not a script")
    raise usage_error(f"{script}: no such file (nor a command on PATH)")


def cmd_run(args: argparse.Namespace) -> int:
    from .interactive import classify_batch_position, read_cmdline
    from .runner import run_lifecycle

    argv = script_argv(args.script, args.args)
    workdir = os.getcwd()
    log_dir = os.path.abspath(args.log_dir) if args.log_dir else workdir
    spec = spec_from_args(args, workdir, log_dir)
    if classify_batch_position(os.environ, read_cmdline(os.getppid())) == "under-batch-shell":
        eprint(
            "kindslurm run: warning: this is a child of the batch script, not the batch "
            "shell itself: scancel or the time limit would kill it before it deletes the "
            "cluster. Start it with `exec kindslurm run ...` (and sbatch --signal=B:USR1@60)."
        )
    return run_lifecycle(spec, argv)


# ------------------------------------------------------------- up / down ---


def scancel(job_id: str) -> None:
    from .slurm.cancel import build_scancel_argv

    try:
        process.run(build_scancel_argv("scancel", [job_id]), timeout=60)
    except process.CommandError as err:
        raise command_failed(f"cannot cancel Slurm job {job_id}", err) from err


@contextlib.contextmanager
def cancel_on_failure(job_id: str) -> Iterator[None]:
    """Cancel the job if what follows fails or is interrupted, then re-raise."""
    from .interactive import UpError

    try:
        yield
    except UpError as err:
        if not err.job_ended:
            with contextlib.suppress(CliError):
                scancel(job_id)
                eprint(f"kindslurm: cancelled Slurm job {job_id}")
        raise
    except (Exception, KeyboardInterrupt):
        with contextlib.suppress(CliError):
            scancel(job_id)
            eprint(f"kindslurm: cancelled Slurm job {job_id}")
        raise


def _path_option(value: str | None) -> str | None:
    return os.path.abspath(os.path.expanduser(value)) if value else None


def cmd_up(args: argparse.Namespace) -> int:
    from . import interactive as up
    from .slurm.environment import clean_slurm_environment
    from .slurm.partitions import parse_slurm_time
    from .slurm.submit import build_job_script, parse_sbatch_output, time_limit_warning

    try:
        extra = up.validate_up_sbatch_options(args.sbatch_options)
    except ValueError as err:
        raise usage_error(str(err)) from err
    time_limit = parse_slurm_time(args.time) if args.time else None
    if args.time and time_limit is None and args.time.upper() not in ("UNLIMITED", "INFINITE"):
        raise usage_error(f"--time {args.time!r}: not a Slurm time (M, H:M:S, D-H:M, ...)")
    if args.cleanup_grace_seconds <= 0 or args.wait_timeout <= 0:
        raise usage_error("--cleanup-grace-seconds and --wait-timeout must be positive")
    if not args.time:  # the partition's DefaultTime (or MaxTime) applies
        time_limit = up.query_partition_time_limit(up.partition_option(extra))
    lead = time_limit_warning(args.cleanup_grace_seconds, time_limit)
    home = os.path.expanduser("~")
    paths = up.default_up_paths(home, _path_option(args.log_dir), _path_option(args.kubeconfig))
    paths = up.UpPaths(paths.log, paths.ready, paths.kubeconfig, _path_option(args.name_file))
    log_dir = os.path.dirname(paths.log)
    os.makedirs(log_dir, mode=0o700, exist_ok=True)  # sbatch does not create it
    workdir = os.getcwd()
    script = build_job_script(
        python=sys.executable,
        spec_json=spec_from_args(args, workdir, log_dir).to_json(),
        command=shlex.join(up.build_hold_argv(sys.executable, paths)),
        description="kindslurm up: an interactive Kind cluster",
    )
    argv = up.build_up_sbatch_argv(
        sbatch="sbatch",
        workdir=workdir,
        output=paths.log,
        warning_lead=lead,
        time_limit=args.time,
        extra=extra,
    )
    try:
        result = process.run(
            argv, input=script, env=clean_slurm_environment(os.environ), timeout=120
        )
        job_id = parse_sbatch_output(result.stdout)
    except process.CommandError as err:
        raise command_failed("sbatch refused the `up` job", err) from err
    except ValueError as err:
        raise CliError(f"sbatch printed no job id: {shlex.join(argv)}\n{result.output}") from err
    log_path = up.expand_job_id(paths.log, job_id)
    eprint(
        f"kindslurm up: submitted Slurm job {job_id}; waiting up to {args.wait_timeout:g} s "
        f"for its cluster (log: {log_path})"
    )
    with cancel_on_failure(job_id):
        info = up.wait_for_ready(
            job_id,
            up.expand_job_id(paths.ready, job_id),
            log_path,
            args.wait_timeout,
            lambda state: eprint(f"kindslurm up: job {job_id} is {state}"),
        )
    left, known = up.query_time_left(job_id)
    shell = os.environ.get("SHELL") or "/bin/sh"
    attach = up.build_attach_argv("srun", job_id, info.cluster, info.kubeconfig, shell)
    if args.json:
        data = json.loads(info.to_json())
        data["time_left_seconds"] = left  # None: no limit if time_left_known
        data["time_left_known"] = known
        data["time_limit_warning_seconds"] = lead  # None: cleaned up at the limit
        data["ssh_forward"] = shlex.join(
            up.build_ssh_forward_argv(info.node, info.api_host, info.api_port)
        )
        data["attach"] = shlex.join(attach)
        print(json.dumps(data, indent=2, sort_keys=True), flush=True)
    else:
        print(
            up.format_ready_message(
                info, time_left=left, time_known=known, warning_lead=lead, login_shell=shell
            ),
            flush=True,
        )
    if args.attach:
        eprint(f"kindslurm up: attaching: {shlex.join(attach)}")
        try:
            os.execvp(attach[0], attach)
        except OSError as err:
            raise CliError(
                f"cannot start {attach[0]}: {err}; the cluster stays up, attach with:\n"
                f"  {shlex.join(attach)}"
            ) from err
    return EXIT_OK


def cmd_down(args: argparse.Namespace) -> int:
    from . import interactive as up
    from .kind import cluster as kind_cluster
    from .kind import naming

    cluster: str | None = None
    if args.target is None:
        job_id = up.find_up_job(current_user())
    elif up.is_job_id(args.target):
        job_id = args.target
    elif naming.is_valid_cluster_name(args.target):
        cluster = args.target
        job_id = up.job_id_of_cluster(cluster, runtime_bin(args), os.environ, os.getuid())
    else:
        raise usage_error(f"{args.target!r} is neither a Slurm job id nor a cluster name")
    paths = up.default_up_paths(os.path.expanduser("~"), _path_option(args.log_dir), None)
    ready_path = up.expand_job_id(paths.ready, job_id)
    info = None
    with contextlib.suppress(OSError, ValueError, TypeError):
        info = up.ReadyInfo.from_json(Path(ready_path).read_text())
    if cluster is None and info is None:
        name = up.query_job_name(job_id)
        if name is not None and not name.startswith("kindslurm-"):
            raise usage_error(
                f"Slurm job {job_id} ({name}) runs no kindslurm cluster; "
                f"cancel it with `scancel {job_id}` if you mean it"
            )
    cluster = cluster or (info.cluster if info else None)
    log_path = info.log if info and info.log else up.expand_job_id(paths.log, job_id)
    what = f"cluster {cluster} (Slurm job {job_id})" if cluster else f"Slurm job {job_id}"
    scancel(job_id)
    eprint(f"kindslurm down: cancelled {what}; waiting for its cleanup")
    deadline = time.monotonic() + args.wait_timeout
    if not up.wait_for_job_end(job_id, deadline):
        raise CliError(
            f"Slurm job {job_id} still runs {args.wait_timeout:g} s after scancel; "
            f"check `squeue -j {job_id}` and its log {log_path}"
        )
    left: list[str] = []
    if cluster:
        env = kind_cluster.build_kind_env(os.environ, args.provider)
        left = up.wait_for_nodes_gone(runtime_bin(args), cluster, env, deadline)
    log_text = up.read_tail(log_path, 200)
    verdict = up.classify_cleanup_log(log_text, cluster) if cluster else None
    # The hold removes what it published; after a SIGKILL it cannot.
    for path in (info.kubeconfig, info.name_file, ready_path) if info else (ready_path,):
        if path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    if left or verdict == "left":
        detail = f"node containers still there: {', '.join(left)}" if left else up.tail(log_text)
        raise CliError(
            f"the job of {what} ended but the cluster may be left behind:\n{detail}\n"
            "fix: run `kindslurm gc --yes` on its node"
        )
    if verdict == "deleted":
        with contextlib.suppress(OSError):
            os.unlink(log_path)  # nothing in it worth keeping
    print(f"Deleted {what}." if cluster else f"Slurm job {job_id} has ended.")
    return EXIT_OK


# ------------------------------------------------------------- list / gc ---


def _discover(args: argparse.Namespace, ended: frozenset[str] = frozenset()) -> Discovery:
    from .clusters import gather_clusters

    if args.all_users and os.geteuid() != 0:
        raise usage_error("only root may use --all-users (others see only their own clusters)")
    user = current_user()
    try:
        discovery = gather_clusters(
            runtime_bin(args),
            user=None if args.all_users else user,
            own_user=user,
            environ=os.environ,
            uid=os.getuid(),
            this_host=os.uname().nodename,
            ended_jobs=ended,
            provider=args.provider,
        )
    except process.CommandError as err:
        raise command_failed("cannot list the node containers", err) from err
    if discovery.lookup.problem:
        eprint(
            "kindslurm: warning: Slurm could not be asked for job states; clusters whose "
            f"runner cannot be checked count as unknown:\n{discovery.lookup.problem}"
        )
    return discovery


def cmd_list(args: argparse.Namespace) -> int:
    from .clusters import cluster_to_dict, format_cluster_table

    discovery = _discover(args)
    now = datetime.now(UTC)
    if args.json:
        entries = [cluster_to_dict(j, now) for j in discovery.judged]
        print(json.dumps(entries, indent=2, sort_keys=True))
    elif discovery.judged:
        print(format_cluster_table(discovery.judged, now, show_user=args.all_users))
    else:
        who = "any user" if args.all_users else current_user()
        eprint(f"no kindslurm clusters of {who} on {os.uname().nodename}")
    return EXIT_OK


def cmd_gc(args: argparse.Namespace) -> int:
    from .clusters import Verdict, delete_cluster

    discovery = _discover(args, frozenset(args.job or ()))
    judged = discovery.judged
    if args.names:
        wanted = set(args.names)
        missing = sorted(wanted - {j.cluster.name for j in judged})
        for name in missing:
            who = "any user's" if args.all_users else f"{current_user()}'s"
            eprint(f"kindslurm gc: {name}: not among {who} kindslurm clusters on this node")
        judged = [j for j in judged if j.cluster.name in wanted]
    if args.job:
        judged = [j for j in judged if j.cluster.slurm_job_id in set(args.job)]
    orphans = [j for j in judged if j.judgement.verdict is Verdict.ORPHAN]
    by_hand = f"KIND_EXPERIMENTAL_PROVIDER={args.provider} {args.kind_path} delete cluster --name"
    for item in judged:
        if item.judgement.verdict is Verdict.ALIVE:
            eprint(f"keeping {item.cluster.name}: {item.judgement.reason}")
        elif item.judgement.verdict is Verdict.UNKNOWN:
            eprint(
                f"keeping {item.cluster.name}: {item.judgement.reason} (if you know it is "
                f"unused: {by_hand} {item.cluster.name})"
            )
    if not args.yes:
        for item in orphans:
            print(f"would delete {item.cluster.name}: {item.judgement.reason}")
        if orphans:
            print(f"dry run: nothing deleted; add --yes to delete {len(orphans)} cluster(s)")
        return EXIT_OK
    failed = 0
    for item in orphans:
        result = delete_cluster(
            item.cluster,
            kind_bin=args.kind_path,
            runtime_bin=runtime_bin(args),
            provider=args.provider,
            environ=os.environ,
        )
        if result.ok:
            print(f"deleted {item.cluster.name} ({item.judgement.reason})")
            for what in result.removed:
                print(f"  removed {what}")
        else:
            failed += 1
            fix = "" if result.refused else f"\nfix: {by_hand} {item.cluster.name}"
            eprint(
                f"kindslurm gc: could not delete {item.cluster.name}:\n"
                + "\n".join(result.problems)
                + fix
            )
    return EXIT_FAILURE if failed else EXIT_OK


# --------------------------------------------------------------- doctor ---


def cmd_doctor(args: argparse.Namespace) -> int:
    from .kind.preflight import Status, preflight_failed, run_preflight

    spec = spec_from_args(args, os.getcwd(), os.getcwd())
    results = run_preflight(spec, os.environ)
    if args.json:
        entries = [
            {"name": r.name, "status": r.status.value, "message": r.message, "fix": r.fix}
            for r in results
        ]
        print(json.dumps(entries, indent=2))
    else:
        for result in results:
            print(result.describe())
        counts = {s: sum(r.status is s for r in results) for s in Status}
        summary = ", ".join(f"{counts[s]} {s.value}" for s in Status)
        ready = "not ready" if preflight_failed(results) else "ready"
        print(f"{os.uname().nodename} is {ready} for Kind ({summary})")
    return EXIT_FAILURE if preflight_failed(results) else EXIT_OK


# ------------------------------------------------------------- ci-setup ---

TESTBED = Path(__file__).resolve().parent / "testbed"


def build_ci_setup_steps(
    testbed: Path,
    *,
    users: Sequence[str],
    kind: bool,
    standin_image: bool,
    podman_service: bool = False,
) -> list[list[str]]:
    """The test-bed script calls `ci-setup` makes, in order. Pure."""
    slurm, kind_sh = str(testbed / "slurm.sh"), str(testbed / "kind.sh")
    steps = [["bash", slurm, "install"], ["bash", slurm, "start"]]
    steps += [["bash", slurm, "add-user", user] for user in users]
    if kind or standin_image or podman_service:
        steps.append(["bash", kind_sh, "install"])
    if standin_image:
        steps.append(["bash", kind_sh, "build-standin-image"])
    if podman_service:
        service = ["bash", kind_sh, "start-podman-service"]
        for user in users:
            service += ["--user", user]
        steps.append(service)
    return steps


def cmd_ci_setup(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise CliError(
            "ci-setup installs Debian packages and starts Slurm daemons: run it as root "
            "(e.g. `sudo $(command -v kindslurm) ci-setup`)",
            EXIT_USAGE,
        )
    for user in args.user or []:
        if not user.replace("-", "").replace("_", "").isalnum():
            raise CliError(f"--user {user!r} is not a valid user name", EXIT_USAGE)
    steps = build_ci_setup_steps(
        TESTBED,
        users=args.user or [],
        kind=args.kind,
        standin_image=args.standin_image,
        podman_service=args.podman_service,
    )
    for argv in steps:
        eprint(f"kindslurm ci-setup: {shlex.join(argv)}")
        # The scripts print their own progress: let it through instead of capturing.
        proc = process.spawn(argv, new_session=False)
        code = proc.wait()
        if code != 0:
            raise CliError(
                f"test-bed step failed (exit {code}): {shlex.join(argv)}\n"
                "its output is above; logs are in /var/log/kindslurm-testbed/",
                EXIT_FAILURE,
            )
    eprint(
        "kindslurm ci-setup: single-node Slurm with accounting is up "
        "(`bash " + str(TESTBED / "slurm.sh") + " stop` stops it)"
    )
    return EXIT_OK


# ----------------------------------------------------------------- hold ---


def cmd_hold(args: argparse.Namespace) -> int:
    from .interactive import hold
    from .runner import log

    def end_time(job_id: str) -> str | None:
        argv = ["squeue", "--noheader", f"--jobs={job_id}", "--format=%e"]
        try:
            text = process.run(argv, timeout=30).stdout.strip()
        except process.CommandError:
            return None
        return text if text and text[0].isdigit() else None

    return hold(
        ready_template=args.ready_file,
        kubeconfig_template=args.kubeconfig,
        log_template=args.log,
        name_file_template=args.name_file,
        environ=os.environ,
        end_time=end_time,
        log=lambda message: log("hold", message),
    )


# --------------------------------------------------------------- parser ---


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="kindslurm",
        description="Throw-away Kind (Kubernetes) clusters in Slurm jobs.",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every command run (to stderr)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cluster, runtime = _cluster_options(), _runtime_options()

    def add(name: str, help: str, parents: list[argparse.ArgumentParser]) -> Any:
        return sub.add_parser(
            name, help=help, description=help, parents=parents, epilog=EPILOG,
            formatter_class=formatter,
        )  # fmt: skip

    run = add("run", "run SCRIPT inside a new Kind cluster, then delete the cluster", [cluster])
    run.add_argument("--log-dir", help="where kind's logs go if create fails (default: here)")
    run.add_argument("script", metavar="SCRIPT", help="workload script (or command on PATH)")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="its arguments")
    run.set_defaults(handler=cmd_run)

    up = add("up", "start a Kind cluster in a Slurm job for interactive use", [cluster])
    up.add_argument("--time", help="the job's time limit (sbatch --time; default: partition's)")
    up.add_argument(
        "--kubeconfig", metavar="PATH",
        help="where to write the kubeconfig; %%j = job id (default: ~/.kube/kindslurm-%%j.yaml)",
    )  # fmt: skip
    up.add_argument("--name-file", metavar="PATH", help="also write the cluster name here")
    up.add_argument(
        "--log-dir", metavar="DIR",
        help="job log and ready marker directory (default: ~/.kindslurm/up)",
    )  # fmt: skip
    up.add_argument(
        "--wait-timeout", type=float, default=UP_WAIT_TIMEOUT, metavar="S",
        help=f"give up (and cancel the job) after S seconds (default: {UP_WAIT_TIMEOUT:g})",
    )  # fmt: skip
    up.add_argument(
        "--cleanup-grace-seconds", type=int, default=DEFAULT_GRACE_SECONDS, metavar="S",
        help="the runner is told to stop S s before the time limit (default: 60; less "
        "for short limits, none at 2 minutes or less: Slurm may warn 60 s early)",
    )  # fmt: skip
    up.add_argument(
        "--attach", action="store_true", help="then open a shell in the job (srun --pty)"
    )
    up.add_argument("--json", action="store_true", help="print the cluster's details as JSON")
    up.add_argument(
        "sbatch_options", nargs="*", metavar="-- SBATCH_OPTIONS",
        help="more sbatch options after `--` (e.g. -- --partition=short --mem=8G)",
    )  # fmt: skip
    up.set_defaults(handler=cmd_up)

    down = add("down", "delete an `up` cluster: cancel its job and wait for cleanup", [runtime])
    down.add_argument(
        "target", nargs="?", metavar="NAME|JOBID",
        help="cluster name or Slurm job id (default: your only `up` job)",
    )  # fmt: skip
    down.add_argument(
        "--wait-timeout", type=float, default=DOWN_WAIT_TIMEOUT, metavar="S",
        help=f"wait at most S seconds for the cleanup (default: {DOWN_WAIT_TIMEOUT:g})",
    )  # fmt: skip
    down.add_argument(
        "--log-dir", metavar="DIR", help="as given to `up` (default: ~/.kindslurm/up)"
    )
    down.set_defaults(handler=cmd_down)

    lst = add("list", "list kindslurm clusters on this node with their Slurm jobs", [runtime])
    lst.add_argument("--json", action="store_true", help="JSON for scripts")
    lst.add_argument("--all-users", action="store_true", help="every user's (root only)")
    lst.set_defaults(handler=cmd_list)

    gc = add("gc", "delete clusters on this node whose Slurm job has ended", [runtime])
    gc.add_argument("--yes", action="store_true", help="really delete (default: dry run)")
    gc.add_argument("--all-users", action="store_true", help="every user's (root only)")
    gc.add_argument(
        "--job", action="append", metavar="JOBID",
        help="only this job's clusters, counted as ended (for a Slurm epilog); repeatable",
    )  # fmt: skip
    gc.add_argument("names", nargs="*", metavar="NAME", help="only these clusters")
    gc.set_defaults(handler=cmd_gc)

    doctor = add("doctor", "check that this node is ready for Kind", [cluster])
    doctor.add_argument("--json", action="store_true", help="JSON for scripts")
    doctor.set_defaults(handler=cmd_doctor)

    ci = add(
        "ci-setup",
        "install and start a throw-away single-node Slurm with accounting (root; for CI)",
        [],
    )
    ci.add_argument(
        "--user", action="append", metavar="NAME",
        help="also create this Linux user and register it in Slurm accounting; repeatable",
    )  # fmt: skip
    ci.add_argument(
        "--kind", action="store_true",
        help="also install Podman (runc) and the kind binary (Debian/Ubuntu)",
    )  # fmt: skip
    ci.add_argument(
        "--standin-image",
        action="store_true",
        help="also build the stand-in node image for machines without a registry "
        "(implies --kind; it has no Kubernetes API)",
    )
    ci.add_argument(
        "--podman-service", action="store_true",
        help="also start a rootful Podman service whose socket the --user users may use "
        "(CONTAINER_HOST; root-equivalent, like a docker group) so that they can run kind "
        "where rootless kind cannot (cgroup v1); implies --kind",
    )  # fmt: skip
    ci.set_defaults(handler=cmd_ci_setup)

    hold = sub.add_parser("_hold")  # the `up` job's workload; no help: hidden
    hold.add_argument("--ready-file", required=True)
    hold.add_argument("--kubeconfig", required=True)
    hold.add_argument("--log")
    hold.add_argument("--name-file")
    hold.set_defaults(handler=cmd_hold)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .interactive import UpError

    parser = build_parser()
    args = parser.parse_args(argv)
    host = getattr(args, "runtime_host", None)
    if host is not None:
        from .kind.cluster import RUNTIME_HOST, service_variable

        if not RUNTIME_HOST.match(host):
            parser.error(f"--runtime-host {host!r} is not a URL like unix:///path/to/socket")
        # kind, the runtime, the runner and the workload all read it from here
        os.environ[service_variable(args.provider)] = host
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG, format="kindslurm: %(message)s")
    try:
        code: int = args.handler(args)
    except (CliError, UpError) as err:
        if err.code == EXIT_USAGE:
            parser.exit(EXIT_USAGE, f"kindslurm {args.command}: error: {err}\n")
        eprint(f"kindslurm {args.command}: {err}")
        return err.code
    except KeyboardInterrupt:
        eprint(f"kindslurm {args.command}: interrupted")
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
