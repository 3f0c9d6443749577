"""Cleanup: the pure decision function fed with recorded command results, its driver
through the process chokepoint, the `kind` network race, the create lock, and the
runner's exit-code decision."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import pytest

from snakemake_executor_plugin_kindslurm import process
from snakemake_executor_plugin_kindslurm.kind import cluster, lock
from snakemake_executor_plugin_kindslurm.kind.cluster import (
    CleanupCommand,
    CleanupPlan,
    CleanupStep,
    CommandOutcome,
    plan_next_cleanup_command,
    summarize_cleanup,
)
from snakemake_executor_plugin_kindslurm.runner import (
    build_workload_env,
    decide_exit_code,
    exit_code_of,
    format_log_line,
    parse_runner_args,
)
from snakemake_executor_plugin_kindslurm.spec import (
    EXIT_BAD_CONFIG,
    EXIT_CLEANUP_FAILED,
    EXIT_CLUSTER_CREATE_FAILED,
    EXIT_PREFLIGHT_FAILED,
)

DATA = Path(__file__).parent.parent / "data" / "kind"
NAME = "ks-rec-abc123"
NODE = f"{NAME}-control-plane"
KUBECONFIG = "/tmp/kindslurm-x/kubeconfig"
VOLUME = (DATA / "podman-volume-ls.txt").read_text().strip()


def recorded(name: str, returncode: int = 0, reason: str = "") -> CommandOutcome:
    """A recorded result: kind prints on stderr, podman listings on stdout."""
    text = (DATA / name).read_text()
    if name.startswith("kind-"):
        return CommandOutcome(returncode, "", text, reason)
    return CommandOutcome(returncode, text, "", reason)


EMPTY = CommandOutcome(0, "", "")
TIMEOUT = CommandOutcome(None, "", "", "timed out after 60 s")


def make_plan(**changes: object) -> CleanupPlan:
    values: dict[str, object] = {
        "cluster_name": NAME,
        "kind_bin": "kind",
        "runtime_bin": "podman",
        "provider": "podman",
        "kubeconfig": KUBECONFIG,
        "node_names": (NODE,),
        "delete_timeout": 60.0,
    }
    values.update(changes)
    return CleanupPlan(**values)  # type: ignore[arg-type]


def drive(
    plan: CleanupPlan, answer: Callable[[CleanupCommand], CommandOutcome]
) -> list[tuple[CleanupCommand, CommandOutcome]]:
    """Run the decision function to the end, answering each command."""
    history: list[tuple[CleanupCommand, CommandOutcome]] = []
    while (command := plan_next_cleanup_command(plan, history)) is not None:
        history.append((command, answer(command)))
        assert len(history) < 20, "cleanup does not terminate"
    return history


def argvs(history: list[tuple[CleanupCommand, CommandOutcome]]) -> list[list[str]]:
    return [list(c.argv) for c, _ in history]


DELETE = ["kind", "delete", "cluster", "--name", NAME, "--kubeconfig", KUBECONFIG]
LIST_NODES = [
    "podman", "ps", "-a", "--filter", f"label=io.x-k8s.kind.cluster={NAME}",
    "--format", "{{.Names}}",
]  # fmt: skip
LIST_NODE_VOLUMES = ["podman", "volume", "ls", "--filter", f"label={NODE}=true", "--quiet"]
LIST_OUR_VOLUMES = [
    "podman", "volume", "ls", "--filter", f"label=io.kindslurm.cluster={NAME}", "--quiet",
]  # fmt: skip
RM_NODES = ["podman", "rm", "-f", "-t", "0", NODE]
RM_VOLUMES = ["podman", "volume", "rm", "-f", VOLUME]


def test_happy_path_is_one_kind_delete() -> None:
    history = drive(make_plan(), lambda c: recorded("kind-delete-ok.txt"))
    assert argvs(history) == [DELETE]
    assert history[0][0].timeout == 60.0
    report = summarize_cleanup(make_plan(), history)
    assert report.ok
    assert report.problems == ()
    assert not report.fallback_used


def test_sweep_after_interrupted_create_checks_containers_and_volumes() -> None:
    answers = {
        tuple(DELETE): recorded("kind-delete-ok.txt"),
        tuple(LIST_NODES): EMPTY,
        tuple(LIST_NODE_VOLUMES): recorded("podman-volume-ls.txt"),  # volume without container
        tuple(LIST_OUR_VOLUMES): recorded("podman-volume-ls.txt"),
        tuple(RM_VOLUMES): recorded("podman-volume-rm.txt"),
    }
    plan = make_plan(sweep=True)
    history = drive(plan, lambda c: answers[c.argv])
    assert argvs(history) == [DELETE, LIST_NODES, LIST_NODE_VOLUMES, LIST_OUR_VOLUMES, RM_VOLUMES]
    report = summarize_cleanup(plan, history)
    assert report.ok
    assert report.removed_volumes == (VOLUME,)  # found twice, removed once


@pytest.mark.parametrize(
    "delete_outcome",
    [
        pytest.param(recorded("kind-delete-failed.txt", 1), id="kind-delete-failed"),
        pytest.param(TIMEOUT, id="kind-delete-timed-out"),
        pytest.param(CommandOutcome(None, reason="program not found"), id="kind-missing"),
    ],
)
def test_fallback_removes_containers_then_volumes(delete_outcome: CommandOutcome) -> None:
    answers = {
        tuple(DELETE): delete_outcome,
        tuple(LIST_NODES): recorded("podman-ps-nodes.txt"),
        tuple(RM_NODES): recorded("podman-rm.txt"),
        tuple(LIST_NODE_VOLUMES): recorded("podman-volume-ls.txt"),
        tuple(LIST_OUR_VOLUMES): EMPTY,
        tuple(RM_VOLUMES): recorded("podman-volume-rm.txt"),
    }
    plan = make_plan()
    history = drive(plan, lambda c: answers[c.argv])
    assert argvs(history) == [
        DELETE, LIST_NODES, RM_NODES, LIST_NODE_VOLUMES, LIST_OUR_VOLUMES, RM_VOLUMES,
    ]  # fmt: skip
    assert all(c.timeout == cluster.FALLBACK_TIMEOUT for c, _ in history[1:])
    report = summarize_cleanup(plan, history)
    assert report.ok, "the fallback removed everything"
    assert report.fallback_used
    assert report.removed_containers == (NODE,)
    assert report.removed_volumes == (VOLUME,)
    assert len(report.problems) == 1
    assert report.problems[0].startswith("kind delete failed (")
    assert "kind delete cluster --name ks-rec-abc123" in report.problems[0]


def test_recorded_kind_error_is_quoted_in_the_problem() -> None:
    history = drive(
        make_plan(),
        lambda c: (
            recorded("kind-delete-failed.txt", 1) if c.step is CleanupStep.KIND_DELETE else EMPTY
        ),
    )
    problem = summarize_cleanup(make_plan(), history).problems[0]
    assert "exited with code 1" in problem
    assert "device or resource busy" in problem


def test_fallback_keeps_going_past_failures_and_reports_the_first() -> None:
    broken = CommandOutcome(125, "", "Error: something broke")

    def answer(command: CleanupCommand) -> CommandOutcome:
        return {
            CleanupStep.KIND_DELETE: TIMEOUT,
            CleanupStep.LIST_CONTAINERS: recorded("podman-ps-nodes.txt"),
            CleanupStep.REMOVE_CONTAINERS: broken,
            CleanupStep.LIST_VOLUMES: recorded("podman-volume-ls.txt"),
            CleanupStep.REMOVE_VOLUMES: recorded("podman-volume-rm.txt"),
        }[command.step]

    plan = make_plan()
    history = drive(plan, answer)
    assert [c.step for c, _ in history] == [
        CleanupStep.KIND_DELETE,
        CleanupStep.LIST_CONTAINERS,
        CleanupStep.REMOVE_CONTAINERS,
        CleanupStep.LIST_VOLUMES,
        CleanupStep.LIST_VOLUMES,
        CleanupStep.REMOVE_VOLUMES,
    ]
    report = summarize_cleanup(plan, history)
    assert not report.ok
    assert "timed out after 60 s" in report.problems[0]
    assert report.problems[1].startswith("remove node containers failed (exited with code 125)")
    assert report.removed_containers == ()


def test_failed_listing_still_looks_for_volumes_but_is_not_ok() -> None:
    def answer(command: CleanupCommand) -> CommandOutcome:
        if command.step is CleanupStep.LIST_CONTAINERS:
            return CommandOutcome(125, "", "Error: database is locked")
        if command.step is CleanupStep.KIND_DELETE:
            return recorded("kind-delete-failed.txt", 1)
        return EMPTY

    plan = make_plan()
    history = drive(plan, answer)
    assert argvs(history) == [DELETE, LIST_NODES, LIST_NODE_VOLUMES, LIST_OUR_VOLUMES]
    assert not summarize_cleanup(plan, history).ok


def test_listed_nodes_outside_the_plan_get_their_volumes_checked() -> None:
    worker = f"{NAME}-worker"

    def answer(command: CleanupCommand) -> CommandOutcome:
        if command.step is CleanupStep.LIST_CONTAINERS:
            return CommandOutcome(0, f"{NODE}\n{worker}\n")
        if command.step is CleanupStep.KIND_DELETE:
            return TIMEOUT
        return EMPTY

    history = drive(make_plan(), answer)
    volume_filters = [c.argv[4] for c, _ in history if c.step is CleanupStep.LIST_VOLUMES]
    assert volume_filters == [
        f"label={NODE}=true",
        f"label={worker}=true",
        f"label=io.kindslurm.cluster={NAME}",
    ]
    removal = next(c for c, _ in history if c.step is CleanupStep.REMOVE_CONTAINERS)
    assert list(removal.argv) == ["podman", "rm", "-f", "-t", "0", NODE, worker]


def test_docker_provider_removes_with_volumes_and_skips_volume_listing() -> None:
    plan = make_plan(provider="docker", runtime_bin="docker")
    history = drive(
        plan,
        lambda c: TIMEOUT if c.step is CleanupStep.KIND_DELETE else CommandOutcome(0, NODE + "\n"),
    )
    assert [c.argv[:3] for c, _ in history] == [
        ("kind", "delete", "cluster"),
        ("docker", "ps", "-a"),
        ("docker", "rm", "-f"),
    ]
    assert list(history[-1][0].argv) == ["docker", "rm", "-f", "-v", NODE]


def test_summary_of_nothing() -> None:
    assert not summarize_cleanup(make_plan(), []).ok


# ------------------------------------------- driver through the chokepoint ---


def test_execute_cleanup_runs_the_plan_through_run_isolated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fake(argv: list[str], **kwargs: object) -> process.CommandResult:
        argv = list(argv)
        if argv == DELETE:
            raise process.CommandTimeoutError(argv, None, reason="timed out after 60 s")
        text = {
            tuple(LIST_NODES): "podman-ps-nodes.txt",
            tuple(RM_NODES): "podman-rm.txt",
            tuple(LIST_NODE_VOLUMES): "podman-volume-ls.txt",
            tuple(RM_VOLUMES): "podman-volume-rm.txt",
        }.get(tuple(argv))
        stdout = (DATA / text).read_text() if text else ""
        return process.CommandResult(tuple(argv), 0, stdout, "", 0.01)

    run_isolated = mock.create_autospec(process.run_isolated, side_effect=fake)
    monkeypatch.setattr(process, "run_isolated", run_isolated)
    seen: list[tuple[CleanupStep, bool]] = []
    report = cluster.execute_cleanup(
        make_plan(),
        env={"KIND_EXPERIMENTAL_PROVIDER": "podman"},
        on_command=lambda c, o, took: seen.append((c.step, o.ok)),
    )
    assert [list(c.args[0]) for c in run_isolated.call_args_list] == [
        DELETE, LIST_NODES, RM_NODES, LIST_NODE_VOLUMES, LIST_OUR_VOLUMES, RM_VOLUMES,
    ]  # fmt: skip
    first = run_isolated.call_args_list[0]
    assert first.kwargs == {
        "timeout": 60.0,
        "check": False,
        "env": {"KIND_EXPERIMENTAL_PROVIDER": "podman"},
    }
    assert seen[0] == (CleanupStep.KIND_DELETE, False)
    assert report.ok
    assert report.fallback_used


# ------------------------------------------------------------ kind network ---


def test_ula_subnet_matches_kind() -> None:
    # kind's well-known default network subnet for "kind"
    assert cluster.generate_ula_subnet("kind", 0) == "fc00:f853:ccd:e793::/64"


@pytest.mark.parametrize(
    ("output", "verdict"),
    [
        pytest.param((DATA / "podman-network-create-exists.txt").read_text(), "exists", id="race"),
        pytest.param(
            "Error: subnet fc00::/64 is being used by a network interface", "overlap", id="overlap"
        ),
        pytest.param("Error: unknown flag: --ipv6", "no-ipv6", id="old-podman"),
        pytest.param("Error: permission denied", "other", id="other"),
    ],
)
def test_classify_network_create_error(output: str, verdict: str) -> None:
    assert cluster.classify_network_create_error(output) == verdict


def _network_fake(
    answers: list[tuple[int, str]],
) -> tuple[mock.MagicMock, list[list[str]]]:
    calls: list[list[str]] = []

    def fake(argv: list[str], **kwargs: object) -> process.CommandResult:
        calls.append(list(argv))
        code, err = answers.pop(0)
        return process.CommandResult(tuple(argv), code, "", err, 0.01)

    return mock.create_autospec(process.run_isolated, side_effect=fake), calls


INSPECT = ["podman", "network", "inspect", "kind"]
CREATE = [
    "podman", "network", "create", "-d=bridge", "--ipv6", "--subnet", "fc00:f853:ccd:e793::/64",
    "kind",
]  # fmt: skip


def test_ensure_kind_network_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, calls = _network_fake([(0, "")])
    monkeypatch.setattr(process, "run_isolated", fake)
    assert cluster.ensure_kind_network("podman") is False
    assert calls == [INSPECT]


def test_ensure_kind_network_creates_it_like_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, calls = _network_fake([(125, "no such network"), (0, "")])
    monkeypatch.setattr(process, "run_isolated", fake)
    assert cluster.ensure_kind_network("podman") is True
    assert calls == [INSPECT, CREATE]


def test_ensure_kind_network_lost_race_is_success(monkeypatch: pytest.MonkeyPatch) -> None:
    race = (DATA / "podman-network-create-exists.txt").read_text()
    fake, calls = _network_fake([(125, "no such network"), (125, race), (0, "")])
    monkeypatch.setattr(process, "run_isolated", fake)
    assert cluster.ensure_kind_network("podman") is False
    assert calls == [INSPECT, CREATE, INSPECT]


def test_ensure_kind_network_without_ipv6(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, calls = _network_fake([(125, ""), (125, "Error: unknown flag: --ipv6"), (0, "")])
    monkeypatch.setattr(process, "run_isolated", fake)
    assert cluster.ensure_kind_network("podman") is True
    assert calls[-1] == ["podman", "network", "create", "-d=bridge", "kind"]


def test_ensure_kind_network_other_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake, _ = _network_fake([(125, ""), (125, "Error: permission denied")])
    monkeypatch.setattr(process, "run_isolated", fake)
    with pytest.raises(process.CommandError, match="permission denied") as info:
        cluster.ensure_kind_network("podman")
    assert "podman network create kind" in info.value.hint


# --------------------------------------------------------------- builders ---


def test_kind_argv_builders() -> None:
    assert cluster.build_create_argv("kind", NAME, "/t/c.yaml", KUBECONFIG, "img:1") == [
        "kind", "create", "cluster", "--name", NAME, "--config", "/t/c.yaml",
        "--kubeconfig", KUBECONFIG, "--retain", "--image", "img:1",
    ]  # fmt: skip
    assert "--image" not in cluster.build_create_argv("kind", NAME, "/c", KUBECONFIG)
    assert cluster.build_export_logs_argv("kind", NAME, "/logs/kind-logs-x") == [
        "kind", "export", "logs", "/logs/kind-logs-x", "--name", NAME,
    ]  # fmt: skip
    assert cluster.build_load_argv("kind", NAME, "/i.tar", archive=True) == [
        "kind", "load", "image-archive", "/i.tar", "--name", NAME,
    ]  # fmt: skip
    assert cluster.build_load_argv("kind", NAME, "busybox:1", archive=False)[2] == "docker-image"


def test_kind_env_puts_the_shim_first() -> None:
    env = cluster.build_kind_env({"PATH": "/usr/bin", "A": "b"}, "podman", "/t/bin")
    assert env == {"PATH": "/t/bin:/usr/bin", "A": "b", "KIND_EXPERIMENTAL_PROVIDER": "podman"}
    assert cluster.build_kind_env({"PATH": "/usr/bin"}, "podman")["PATH"] == "/usr/bin"


# ------------------------------------------------------------- create lock ---


def test_lock_file_is_world_writable_despite_umask(tmp_path: Path) -> None:
    path = str(tmp_path / "create.lock")
    old = os.umask(0o077)
    try:
        with lock.create_lock(path) as waited:
            assert waited < 1
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666


def test_lock_refuses_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "create.lock").symlink_to(tmp_path / "target")
    with pytest.raises(OSError), lock.create_lock(str(tmp_path / "create.lock")):
        pass


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _holder(path: str, seconds: float) -> subprocess.Popen[str]:
    lock.open_lock_file(path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    return holder


def test_lock_waits_for_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "create.lock")
    holder = _holder(path, 0.5)
    start = time.monotonic()
    with lock.create_lock(path) as waited:
        assert waited >= 0.3
    assert time.monotonic() - start < 5
    holder.wait()


def test_lock_wait_ends_on_cancel_and_on_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "create.lock")
    holder = _holder(path, 30)
    try:
        deadline = time.monotonic() + 0.3
        with (
            pytest.raises(lock.LockInterrupted, match="interrupted"),
            lock.create_lock(path, cancelled=lambda: time.monotonic() > deadline),
        ):
            pass
        with (
            pytest.raises(lock.LockInterrupted, match=r"after 0\.2 s"),
            lock.create_lock(path, timeout=0.2),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------- runner decisions ---


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"workload_code": 0}, 0, id="ok"),
        pytest.param({"workload_code": 42}, 42, id="workload-code"),
        pytest.param({"workload_code": 0, "cleanup_ok": False}, EXIT_CLEANUP_FAILED, id="cleanup"),
        pytest.param(
            {"workload_code": 3, "cleanup_ok": False}, 3, id="cleanup-does-not-hide-failure"
        ),
        pytest.param({"setup_code": EXIT_BAD_CONFIG}, EXIT_BAD_CONFIG, id="bad-config"),
        pytest.param({"setup_code": EXIT_PREFLIGHT_FAILED}, EXIT_PREFLIGHT_FAILED, id="preflight"),
        pytest.param(
            {"setup_code": EXIT_CLUSTER_CREATE_FAILED, "cleanup_ok": False},
            EXIT_CLUSTER_CREATE_FAILED,
            id="create-failed",
        ),
        pytest.param({"signum": signal.SIGTERM, "workload_code": 0}, 143, id="sigterm"),
        pytest.param(
            {"signum": signal.SIGINT, "setup_code": EXIT_CLUSTER_CREATE_FAILED}, 130, id="sigint"
        ),
        pytest.param({"signum": signal.SIGHUP, "cleanup_ok": False}, 129, id="sighup"),
        pytest.param({}, EXIT_CLUSTER_CREATE_FAILED, id="no-workload-no-reason"),
    ],
)
def test_decide_exit_code(kwargs: dict[str, object], expected: int) -> None:
    values: dict[str, object] = {
        "signum": None,
        "setup_code": None,
        "workload_code": None,
        "cleanup_ok": True,
    }
    values.update(kwargs)
    assert decide_exit_code(**values) == expected  # type: ignore[arg-type]


def test_exit_code_of_signal_deaths() -> None:
    assert exit_code_of(-9) == 137
    assert exit_code_of(-15) == 143
    assert exit_code_of(7) == 7


def test_workload_env() -> None:
    env = build_workload_env({"PATH": "/bin", "KUBECONFIG": "/home/u/.kube/config"}, NAME,
                             KUBECONFIG, "podman", "/w")  # fmt: skip
    assert env == {
        "PATH": "/bin",
        "K8S_CLUSTER_NAME": NAME,
        "KUBECONFIG": KUBECONFIG,
        "KIND_EXPERIMENTAL_PROVIDER": "podman",
        "KINDSLURM_APP_DIR": "/w",
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ["--spec", "{}", "--", "sh", "-c", "x"], ("{}", ["sh", "-c", "x"]), id="plain"
        ),
        pytest.param(["--spec={}", "--", "--spec"], ("{}", ["--spec"]), id="equals-and-dashes"),
    ],
)
def test_parse_runner_args(args: list[str], expected: tuple[str, list[str]]) -> None:
    assert parse_runner_args(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--", "true"], "missing --spec", id="no-spec"),
        pytest.param(["--spec", "{}", "true"], "unexpected argument 'true'", id="no-dashes"),
        pytest.param(["--spec", "{}"], "missing `--`", id="nothing"),
        pytest.param(["--spec", "{}", "--"], "missing the command", id="no-command"),
    ],
)
def test_parse_runner_args_errors(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_runner_args(args)


def test_log_line_format() -> None:
    now = datetime(2024, 5, 1, 12, 0, 3, tzinfo=timezone(timedelta(hours=2)))
    assert format_log_line("create", "cluster x ready", 3.14159, now) == (
        "[kindslurm 2024-05-01T12:00:03+02:00] create: cluster x ready (3.14 s)\n"
    )
    assert format_log_line("delete", "a\nb", 0.5, now).endswith("delete: a (0.50 s)\n    b\n")
