"""kind and container-runtime commands: pure argv builders, output parsers,
the runtime label shim, the `kind` network, and the cleanup state machine.

Commands run through process.py (run_isolated: own session, so the Ctrl-C or
SIGTERM aimed at the runner does not cut a cleanup step short, and a timeout
kills kind together with the podman processes it started).
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import os
import re
import shlex
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import process
from .naming import LABEL_CLUSTER, build_node_filter

KIND_NETWORK = "kind"
EXPORT_LOGS_TIMEOUT = 60.0
FALLBACK_TIMEOUT = 30.0
NETWORK_TIMEOUT = 30.0
LOAD_TIMEOUT = 300.0

# --------------------------------------------------------------- builders ---


# The variable that points each provider's CLI (and kind through it) at a
# runtime service instead of the local engine.
SERVICE_VARIABLES = {"podman": "CONTAINER_HOST", "docker": "DOCKER_HOST"}
# What Podman's --url / CONTAINER_HOST and Docker's DOCKER_HOST accept.
RUNTIME_HOST = re.compile(r"^(unix|tcp|ssh)://\S+$")


def service_variable(provider: str) -> str:
    return SERVICE_VARIABLES.get(provider, "CONTAINER_HOST")


def runtime_service(provider: str, environ: Mapping[str, str]) -> str | None:
    """The runtime service the provider's CLI talks to (CONTAINER_HOST...), if any."""
    return environ.get(service_variable(provider), "").strip() or None


def runtime_command_name(provider: str) -> str:
    """The program name kind's provider runs from PATH."""
    return "docker" if provider == "docker" else "podman"


def build_kind_env(
    environ: Mapping[str, str], provider: str, shim_dir: str | None = None
) -> dict[str, str]:
    """Environment for kind: the provider selected, our shim first on PATH if given."""
    env = dict(environ)
    env["KIND_EXPERIMENTAL_PROVIDER"] = provider
    if shim_dir:
        env["PATH"] = os.pathsep.join(p for p in (shim_dir, environ.get("PATH", "")) if p)
    return env


def build_create_argv(
    kind_bin: str, name: str, config_path: str, kubeconfig: str, image: str | None = None
) -> list[str]:
    """`kind create cluster`, with --retain: on failure we export logs, then delete."""
    argv = [
        kind_bin, "create", "cluster",
        "--name", name,
        "--config", config_path,
        "--kubeconfig", kubeconfig,
        "--retain",
    ]  # fmt: skip
    if image:
        argv += ["--image", image]
    return argv


def build_delete_argv(kind_bin: str, name: str, kubeconfig: str) -> list[str]:
    """`kind delete cluster`; the private --kubeconfig keeps ~/.kube/config untouched."""
    return [kind_bin, "delete", "cluster", "--name", name, "--kubeconfig", kubeconfig]


def build_export_logs_argv(kind_bin: str, name: str, dest: str) -> list[str]:
    return [kind_bin, "export", "logs", dest, "--name", name]


def build_load_argv(kind_bin: str, name: str, image: str, *, archive: bool) -> list[str]:
    """`kind load image-archive FILE` for a file, `kind load docker-image REF` otherwise."""
    sub = "image-archive" if archive else "docker-image"
    return [kind_bin, "load", sub, image, "--name", name]


def build_list_nodes_argv(runtime: str, name: str) -> list[str]:
    """The node containers of a cluster, created or running, one name a line."""
    return [runtime, "ps", "-a", "--filter", build_node_filter(name), "--format", "{{.Names}}"]


def build_remove_containers_argv(runtime: str, provider: str, names: Sequence[str]) -> list[str]:
    if provider == "docker":
        # docker rm -f kills at once; -v takes the anonymous /var volume along.
        return [runtime, "rm", "-f", "-v", *names]
    # podman rm -f waits 10 s for a PID 1 that ignores SIGTERM; -t 0 does not.
    return [runtime, "rm", "-f", "-t", "0", *names]


def build_list_volumes_argv(runtime: str, label_filter: str) -> list[str]:
    return [runtime, "volume", "ls", "--filter", f"label={label_filter}", "--quiet"]


def build_remove_volumes_argv(runtime: str, volumes: Sequence[str]) -> list[str]:
    return [runtime, "volume", "rm", "-f", *volumes]


def build_network_inspect_argv(runtime: str, network: str = KIND_NETWORK) -> list[str]:
    return [runtime, "network", "inspect", network]


def build_network_create_argv(
    runtime: str, network: str = KIND_NETWORK, ipv6_subnet: str | None = None
) -> list[str]:
    """The network kind itself would create (same flags, same IPv6 subnet)."""
    argv = [runtime, "network", "create", "-d=bridge"]
    if ipv6_subnet:
        argv += ["--ipv6", "--subnet", ipv6_subnet]
    return [*argv, network]


def generate_ula_subnet(network: str, attempt: int) -> str:
    """kind's IPv6 ULA /64 for a network name (podman provider, network.go)."""
    payload = network.encode() + struct.pack("<i", attempt)
    digest = hashlib.sha1(payload, usedforsecurity=False).digest()
    raw = bytes([0xFC, 0x00]) + digest[2:8] + bytes(8)
    return str(ipaddress.IPv6Network((raw, 64)))


def parse_lines(stdout: str) -> list[str]:
    """Non-empty stripped lines: container names, volume names."""
    return [line.strip() for line in stdout.splitlines() if line.strip()]


def classify_network_create_error(output: str) -> str:
    """`exists` (a parallel job won the race), `overlap`, `no-ipv6` or `other`."""
    text = output.lower()
    if "already used" in text or "already exists" in text:
        return "exists"
    if "is being used by a network interface" in text or "already being used by a cni" in text:
        return "overlap"
    if "unknown flag: --ipv6" in text:
        return "no-ipv6"
    return "other"


# ------------------------------------------------------------ label shim ---


def build_runtime_shim(real_runtime: str, labels: Mapping[str, str]) -> str:
    """A /bin/sh wrapper that adds labels to `run` and `volume create`, execs the rest.

    Every value is shell-quoted. kind puts the subcommand first, so "$1" is it.
    """
    label_args = " ".join(f"--label {shlex.quote(f'{k}={v}')}" for k, v in labels.items())
    real = shlex.quote(real_runtime)
    return f"""#!/bin/sh
# Generated by kindslurm for one job; deleted with the cluster.
# WHY: kind has no option to put extra labels on its node containers (its
# provision.go only adds io.x-k8s.kind.cluster and io.x-k8s.kind.role), and it
# runs the container runtime by name from PATH. This wrapper is first on kind's
# PATH only. It adds the job's labels (Slurm job id, user, creation time) to
# `run` and `volume create` so `kindslurm list/gc` can find what a job left,
# and passes every other call to the real runtime unchanged.
case "$1" in
run)
    shift
    exec {real} run {label_args} "$@"
    ;;
volume)
    if [ "$2" = create ]; then
        shift 2
        exec {real} volume create {label_args} "$@"
    fi
    ;;
esac
exec {real} "$@"
"""


def install_runtime_shim(
    directory: Path, provider: str, real_runtime: str, labels: Mapping[str, str]
) -> Path:
    """Write the shim as <directory>/<podman|docker>, mode 0700."""
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / runtime_command_name(provider)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o700)
    with os.fdopen(fd, "w") as handle:
        handle.write(build_runtime_shim(real_runtime, labels))
    os.chmod(path, 0o700)
    return path


# ---------------------------------------------------------- kind network ---


def ensure_kind_network(
    runtime: str, env: Mapping[str, str] | None = None, network: str = KIND_NETWORK
) -> bool:
    """Make sure the podman network `kind` exists; True if we created it.

    Two kind creates racing to make the network fail one of them ("network
    name kind already used"), so we make it first, the way kind would, and
    take "already used" as success (re-checked once).
    """
    if _network_exists(runtime, env, network):
        return False
    subnet: str | None = generate_ula_subnet(network, 0)
    for attempt in range(1, 6):
        result = process.run_isolated(
            build_network_create_argv(runtime, network, subnet),
            timeout=NETWORK_TIMEOUT,
            check=False,
            env=env,
        )
        if result.returncode == 0:
            return True
        verdict = classify_network_create_error(result.output)
        if verdict == "exists" and _network_exists(runtime, env, network):
            return False
        if verdict == "no-ipv6" and subnet is not None:
            subnet = None
            continue
        if verdict == "overlap" and subnet is not None:
            subnet = generate_ula_subnet(network, attempt)
            continue
        raise process.CommandError(
            result.argv,
            result.returncode,
            result.stdout,
            result.stderr,
            hint=f"create the network by hand: {runtime} network create {network}",
        )
    raise process.CommandError(
        build_network_create_argv(runtime, network, subnet),
        None,
        reason="no free IPv6 subnet after 5 attempts",
        hint=f"create the network by hand: {runtime} network create {network}",
    )


def _network_exists(runtime: str, env: Mapping[str, str] | None, network: str) -> bool:
    result = process.run_isolated(
        build_network_inspect_argv(runtime, network), timeout=NETWORK_TIMEOUT, check=False, env=env
    )
    return result.returncode == 0


# ---------------------------------------------------------------- queries ---


def list_node_containers(
    runtime: str, name: str, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> list[str]:
    result = process.run_isolated(build_list_nodes_argv(runtime, name), timeout=timeout, env=env)
    return parse_lines(result.stdout)


# --------------------------------------------------- cleanup state machine ---


class CleanupStep(enum.Enum):
    KIND_DELETE = "kind delete"
    LIST_CONTAINERS = "list node containers"
    REMOVE_CONTAINERS = "remove node containers"
    LIST_VOLUMES = "list node volumes"
    REMOVE_VOLUMES = "remove node volumes"


@dataclass(frozen=True)
class CleanupCommand:
    step: CleanupStep
    argv: tuple[str, ...]
    timeout: float
    targets: tuple[str, ...] = ()  # what a remove command removes


@dataclass(frozen=True)
class CommandOutcome:
    """What a cleanup command did; returncode None: it did not run to an exit."""

    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        return "\n".join(p for p in (self.stdout.strip(), self.stderr.strip()) if p)

    @classmethod
    def from_result(cls, result: process.CommandResult) -> CommandOutcome:
        return cls(result.returncode, result.stdout, result.stderr)

    @classmethod
    def from_error(cls, err: process.CommandError) -> CommandOutcome:
        return cls(err.returncode, err.stdout, err.stderr, err.reason)


@dataclass(frozen=True)
class CleanupPlan:
    """What to delete. sweep=True looks for leftovers even after kind delete succeeded
    (after an interrupted or failed create, kind delete only sees containers that
    exist, not a volume made for a container that never was)."""

    cluster_name: str
    kind_bin: str
    runtime_bin: str
    provider: str
    kubeconfig: str
    node_names: tuple[str, ...]
    delete_timeout: float
    sweep: bool = False
    fallback_timeout: float = FALLBACK_TIMEOUT


History = Sequence[tuple[CleanupCommand, CommandOutcome]]


def plan_next_cleanup_command(plan: CleanupPlan, history: History) -> CleanupCommand | None:
    """The next command to run given what ran so far, or None when done. Pure.

    Order: kind delete; if it failed (or sweep is set): list the node
    containers by kind's label and remove them, list volumes by each node's
    `<node>=true` label (kind's) and by our cluster label, remove them.
    Failures do not stop the sequence.
    """
    if not history:
        return CleanupCommand(
            CleanupStep.KIND_DELETE,
            tuple(build_delete_argv(plan.kind_bin, plan.cluster_name, plan.kubeconfig)),
            plan.delete_timeout,
        )
    if history[0][1].ok and not plan.sweep:
        return None
    ran = {command.argv for command, _ in history}
    steps = {command.step for command, _ in history}

    def command(
        step: CleanupStep, argv: Sequence[str], targets: Sequence[str] = ()
    ) -> CleanupCommand:
        return CleanupCommand(step, tuple(argv), plan.fallback_timeout, tuple(targets))

    if CleanupStep.LIST_CONTAINERS not in steps:
        return command(
            CleanupStep.LIST_CONTAINERS, build_list_nodes_argv(plan.runtime_bin, plan.cluster_name)
        )
    containers = _outputs(history, CleanupStep.LIST_CONTAINERS)
    if containers and CleanupStep.REMOVE_CONTAINERS not in steps:
        return command(
            CleanupStep.REMOVE_CONTAINERS,
            build_remove_containers_argv(plan.runtime_bin, plan.provider, containers),
            containers,
        )
    if plan.provider == "docker":
        return None  # docker nodes use anonymous volumes, gone with `rm -v`
    for label_filter in volume_label_filters(plan, containers):
        argv = tuple(build_list_volumes_argv(plan.runtime_bin, label_filter))
        if argv not in ran:
            return command(CleanupStep.LIST_VOLUMES, argv)
    volumes = _outputs(history, CleanupStep.LIST_VOLUMES)
    if volumes and CleanupStep.REMOVE_VOLUMES not in steps:
        argv = tuple(build_remove_volumes_argv(plan.runtime_bin, volumes))
        return command(CleanupStep.REMOVE_VOLUMES, argv, volumes)
    return None


def volume_label_filters(plan: CleanupPlan, containers: Sequence[str]) -> list[str]:
    """kind labels a node's /var volume `<node name>=true`; our shim adds our cluster label."""
    nodes = list(dict.fromkeys([*plan.node_names, *containers]))
    return [f"{node}=true" for node in nodes] + [f"{LABEL_CLUSTER}={plan.cluster_name}"]


def _outputs(history: History, step: CleanupStep) -> list[str]:
    """Unique lines of the successful outputs of step, in order."""
    lines: list[str] = []
    for command, outcome in history:
        if command.step is step and outcome.ok:
            lines.extend(parse_lines(outcome.stdout))
    return list(dict.fromkeys(lines))


@dataclass(frozen=True)
class CleanupReport:
    """ok: nothing of the cluster is known to be left. problems: every failed
    command, in order (the first is the first error)."""

    ok: bool
    problems: tuple[str, ...] = ()
    fallback_used: bool = False
    removed_containers: tuple[str, ...] = ()
    removed_volumes: tuple[str, ...] = ()
    steps: tuple[CleanupStep, ...] = field(default=())


def describe_failure(command: CleanupCommand, outcome: CommandOutcome) -> str:
    reason = outcome.reason or f"exited with code {outcome.returncode}"
    text = f"{command.step.value} failed ({reason}): {shlex.join(command.argv)}"
    output = outcome.output
    if output:
        text += "\n  " + "\n  ".join(output.splitlines()[-20:])
    return text


def summarize_cleanup(plan: CleanupPlan, history: History) -> CleanupReport:
    """Judge a finished cleanup. Pure.

    A failed kind delete is a problem to report but not a failure when the
    fallback then removed everything; any failed fallback step is a failure
    (we can no longer say the cluster is gone).
    """
    if not history:
        return CleanupReport(ok=False, problems=("cleanup did not run",))
    problems = tuple(describe_failure(c, o) for c, o in history if not o.ok)
    fallback = history[1:]
    ok = all(o.ok for _, o in fallback) if fallback else history[0][1].ok
    removed_containers = tuple(
        t for c, o in history if c.step is CleanupStep.REMOVE_CONTAINERS and o.ok for t in c.targets
    )
    removed_volumes = tuple(
        t for c, o in history if c.step is CleanupStep.REMOVE_VOLUMES and o.ok for t in c.targets
    )
    return CleanupReport(
        ok=ok,
        problems=problems,
        fallback_used=not history[0][1].ok,
        removed_containers=removed_containers,
        removed_volumes=removed_volumes,
        steps=tuple(c.step for c, _ in history),
    )


MAX_CLEANUP_COMMANDS = 64


def execute_cleanup(
    plan: CleanupPlan,
    *,
    env: Mapping[str, str] | None = None,
    on_command: Callable[[CleanupCommand, CommandOutcome, float], None] | None = None,
) -> CleanupReport:
    """Run the cleanup plan to the end through process.run_isolated; never raises
    for a failed command."""
    history: list[tuple[CleanupCommand, CommandOutcome]] = []
    while len(history) < MAX_CLEANUP_COMMANDS:
        command = plan_next_cleanup_command(plan, history)
        if command is None:
            break
        start = time.monotonic()
        try:
            outcome = CommandOutcome.from_result(
                process.run_isolated(command.argv, timeout=command.timeout, check=False, env=env)
            )
        except process.CommandError as err:
            outcome = CommandOutcome.from_error(err)
        except OSError as err:
            outcome = CommandOutcome(None, reason=str(err))
        history.append((command, outcome))
        if on_command is not None:
            on_command(command, outcome, time.monotonic() - start)
    return summarize_cleanup(plan, history)
