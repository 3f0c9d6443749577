"""The lifecycle runner as a real subprocess against real kind + Podman (stand-in node image).

Every test ends by checking that no node container, volume, private temp dir
or state record of its cluster is left (tests/integration/leakcheck.py).
Needs root, kind, podman, kubectl and the stand-in images (testbed/kind.sh).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from snakemake_executor_plugin_kindslurm import runner as runner_module
from snakemake_executor_plugin_kindslurm.spec import (
    EXIT_BAD_CONFIG,
    EXIT_CLUSTER_CREATE_FAILED,
    EXIT_PREFLIGHT_FAILED,
    RunnerSpec,
)

from ..conftest import missing
from .leakcheck import (
    assert_nothing_left,
    kind_node_containers,
    leftovers,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NEVER_READY_IMAGE = "localhost/kindslurm-standin-node:never-ready"
CLUSTER_NAME = re.compile(r"create: cluster (ks-[a-z0-9.-]+) \(")


@pytest.fixture(scope="module")
def image(kind_ready: str) -> str:
    """The stand-in node image (kind_ready, from conftest, skips naming what is missing)."""
    return kind_ready


@pytest.fixture
def never_ready_image(image: str) -> str:
    if subprocess.run(["podman", "image", "exists", NEVER_READY_IMAGE]).returncode != 0:
        missing(f"image {NEVER_READY_IMAGE} (testbed/kind.sh build-standin-image)")
    return NEVER_READY_IMAGE


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work dir"  # a space, to keep quoting honest
    path.mkdir()
    return path


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> Path:
    """The runner's TMPDIR: private temp dirs land here, so leak checks are exact."""
    path = tmp_path / "tmp"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def nothing_new_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """Safety net besides each test's own check: no new ks-* leftovers at all."""
    if "image" not in request.fixturenames:
        yield
        return
    before = leftovers()
    yield
    assert_nothing_left(before=before)


@dataclass
class Run:
    returncode: int
    stderr: str
    elapsed: float

    @property
    def cluster(self) -> str:
        match = CLUSTER_NAME.search(self.stderr)
        assert match, f"no cluster name in the runner's log:\n{self.stderr}"
        return match.group(1)


class Runner:
    """One runner subprocess, stderr to a file we can poll."""

    def __init__(self, spec: RunnerSpec, script: str, tmpdir: Path, log: Path, **env: str) -> None:
        self.log = log
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        environ.update(
            PYTHONPATH=str(REPO), TMPDIR=str(tmpdir), KIND_EXPERIMENTAL_PROVIDER="podman", **env
        )
        self.start = time.monotonic()
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "snakemake_executor_plugin_kindslurm.runner",
                    "--spec", spec.to_json(), "--", "sh", "-c", script,
                ],
                stdin=subprocess.DEVNULL,
                stderr=err,
                env=environ,
                cwd=spec.workdir,
            )  # fmt: skip

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()
            if re.search(pattern, text):
                return text
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in the runner's log:\n{self.stderr()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 120) -> Run:
        code = self.proc.wait(timeout=timeout)
        return Run(code, self.stderr(), time.monotonic() - self.start)


def make_spec(workdir: Path, **changes: Any) -> RunnerSpec:
    values: dict[str, Any] = {"workdir": str(workdir), "delete_timeout": 60.0}
    values.update(changes)
    return RunnerSpec(**values)


def run_runner(spec: RunnerSpec, script: str, tmpdir: Path, **env: str) -> Run:
    return Runner(spec, script, tmpdir, tmpdir.parent / "runner.log", **env).finish()


def check_gone(run: Run, tmpdir: Path) -> None:
    assert_nothing_left(run.cluster, tmpdir)
    assert not list(tmpdir.iterdir()), f"left in TMPDIR: {list(tmpdir.iterdir())}"


def wait_file(path: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# ------------------------------------------------------------------ normal ---

WORKLOAD_PROBE = r"""
set -e
out="$KINDSLURM_APP_DIR/probe"
mkdir -p "$out"
printf '%s\n' "$K8S_CLUSTER_NAME" > "$out/name"
printf '%s\n' "$KUBECONFIG" > "$out/kubeconfig"
printf '%s\n' "$KIND_EXPERIMENTAL_PROVIDER" > "$out/provider"
pwd > "$out/cwd"
stat -c %a "$KUBECONFIG" > "$out/kubeconfig-mode"
stat -c %a "$(dirname "$KUBECONFIG")" > "$out/kubeconfig-dir-mode"
/usr/bin/kubectl --context "$K8S_CLUSTER_NAME" config view --minify \
    -o jsonpath='{.contexts[0].name} {.clusters[0].cluster.server}' > "$out/kubectl"
/usr/bin/kubectl config current-context > "$out/current-context"
podman exec "$K8S_CLUSTER_NAME-control-plane" sh -c 'echo from-the-node > /app/from-node'
podman inspect "$K8S_CLUSTER_NAME-control-plane" --format '{{json .Config.Labels}}' > "$out/labels"
cp "${XDG_RUNTIME_DIR:-/tmp}/kindslurm-$(id -u)/clusters/$K8S_CLUSTER_NAME.json" "$out/record"
"""


def test_workload_sees_its_cluster_and_the_app_mount(
    image: str, workdir: Path, tmpdir_env: Path
) -> None:
    run = run_runner(
        make_spec(workdir, node_image=image),
        WORKLOAD_PROBE,
        tmpdir_env,
        SLURM_JOB_ID="777_3",
    )
    assert run.returncode == 0, run.stderr
    probe = workdir / "probe"
    name = (probe / "name").read_text().strip()
    assert name == run.cluster
    assert re.fullmatch(r"ks-777-3-[a-z0-9]{6}", name)
    kubeconfig = (probe / "kubeconfig").read_text().strip()
    assert kubeconfig.startswith(str(tmpdir_env) + "/kindslurm-" + name + "-")
    assert (probe / "provider").read_text().strip() == "podman"
    assert (probe / "cwd").read_text().strip() == str(workdir)
    assert (probe / "kubeconfig-mode").read_text().strip() == "600"
    assert (probe / "kubeconfig-dir-mode").read_text().strip() == "700"
    context, server = (probe / "kubectl").read_text().split()
    assert context == name
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", server)
    assert (probe / "current-context").read_text().strip() == name
    assert (workdir / "from-node").read_text() == "from-the-node\n"
    labels = json.loads((probe / "labels").read_text())
    assert labels["io.x-k8s.kind.cluster"] == name
    assert labels["io.kindslurm.cluster"] == name
    assert labels["io.kindslurm.slurm-job-id"] == "777_3"
    assert labels["io.kindslurm.user"] == "root"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["io.kindslurm.created"])
    record = json.loads((probe / "record").read_text())
    assert record["name"] == name
    assert record["kubeconfig"] == kubeconfig
    assert record["slurm_job_id"] == "777_3"
    for phase in ("preflight", "create", "workload", "delete"):
        assert re.search(rf"^\[kindslurm \S+\] {phase}: .*\(\d+\.\d\d s\)$", run.stderr, re.M)
    check_gone(run, tmpdir_env)


@pytest.mark.parametrize("code", [1, 42])
def test_workload_exit_code_propagates(
    image: str, workdir: Path, tmpdir_env: Path, code: int
) -> None:
    run = run_runner(make_spec(workdir, node_image=image), f"exit {code}", tmpdir_env)
    assert run.returncode == code, run.stderr
    assert f"workload: exited with code {code}" in run.stderr
    check_gone(run, tmpdir_env)


def test_user_and_rule_configs_are_merged(image: str, workdir: Path, tmpdir_env: Path) -> None:
    data = workdir / "data"
    data.mkdir()
    (data / "input.txt").write_text("hello\n")
    user = workdir / "kind.yaml"
    user.write_text(
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
        "nodes:\n- role: control-plane\n  extraMounts:\n"
        "  - {hostPath: data, containerPath: /data, readOnly: true}\n"
        "  extraPortMappings:\n  - {containerPort: 8080, hostPort: 0}\n"
    )
    rule = workdir / "rule.yaml"
    rule.write_text("featureGates: {SidecarContainers: true}\n")
    script = (
        'podman exec "$K8S_CLUSTER_NAME-control-plane" cat /data/input.txt > seen.txt && '
        'podman exec "$K8S_CLUSTER_NAME-control-plane" ls /app > app.txt && '
        'podman port "$K8S_CLUSTER_NAME-control-plane" > ports.txt'
    )
    run = run_runner(
        make_spec(workdir, node_image=image, kind_config=str(user), rule_kind_config=str(rule)),
        script,
        tmpdir_env,
    )
    assert run.returncode == 0, run.stderr
    assert (workdir / "seen.txt").read_text() == "hello\n"
    assert "kind.yaml" in (workdir / "app.txt").read_text()
    assert "8080/tcp" in (workdir / "ports.txt").read_text()
    check_gone(run, tmpdir_env)


def test_preloaded_image_archive(image: str, workdir: Path, tmpdir_env: Path) -> None:
    archive = workdir / "image.tar"
    subprocess.run(["podman", "save", "-o", str(archive), image], check=True, timeout=120)
    run = run_runner(
        make_spec(workdir, node_image=image, preload_images=(str(archive),)), "true", tmpdir_env
    )
    assert run.returncode == 0, run.stderr
    assert f"create: loaded image {archive}" in run.stderr
    check_gone(run, tmpdir_env)


@pytest.fixture
def preload_tags(image: str) -> Iterator[tuple[str, str]]:
    """Two fresh names for the stand-in image: one to save as an archive, one to
    preload by name (the stand-in node has neither until `kind load` brings it)."""
    suffix = f"{os.getpid()}-{time.monotonic_ns() % 10**6}"
    tags = (
        f"localhost/kindslurm-preload-archive:{suffix}",
        f"localhost/kindslurm-preload-name:{suffix}",
    )
    for tag in tags:
        subprocess.run(["podman", "tag", image, tag], check=True, timeout=60)
    yield tags
    subprocess.run(["podman", "untag", image, *tags], capture_output=True, timeout=60)


PRELOAD_PROBE = r"""
for ref in {refs}; do
    # The stand-in's crictl answers from what `ctr images import` received.
    podman exec "$K8S_CLUSTER_NAME-control-plane" crictl inspecti "$ref" >> inspecti.json
    echo "$ref $?" >> inspecti.rc
done
podman exec "$K8S_CLUSTER_NAME-control-plane" ctr -n k8s.io images list -q > ctr-list.txt
"""


def test_preloaded_images_are_in_the_node_before_the_workload_starts(
    image: str, workdir: Path, tmpdir_env: Path, preload_tags: tuple[str, str]
) -> None:
    """An archive and a local image name (saved with podman, since kind's
    `load docker-image` would ask a docker daemon) both reach the node's
    container store, checked from inside the node by the workload itself."""
    archived, named = preload_tags
    archive = workdir / "app image.tar"
    subprocess.run(["podman", "save", "-o", str(archive), archived], check=True, timeout=120)
    script = PRELOAD_PROBE.format(refs=shlex.join([archived, named]))
    run = run_runner(
        make_spec(workdir, node_image=image, preload_images=(str(archive), named)),
        script,
        tmpdir_env,
    )
    assert run.returncode == 0, run.stderr
    assert (workdir / "inspecti.rc").read_text().splitlines() == [f"{archived} 0", f"{named} 0"]
    listed = (workdir / "ctr-list.txt").read_text().split()
    assert archived in listed and named in listed
    assert f'"{archived}"' in (workdir / "inspecti.json").read_text()
    loaded = [
        run.stderr.index(f"create: loaded image {archive}"),
        run.stderr.index(f"create: loaded image {named}"),
    ]
    assert max(loaded) < run.stderr.index("workload: running"), run.stderr
    assert re.search(rf"create: loaded image {re.escape(named)} \(\d+\.\d\d s\)", run.stderr)
    check_gone(run, tmpdir_env)


def _container_creates_since(since: float, prefix: str) -> list[str]:
    proc = subprocess.run(
        ["podman", "events", "--stream=false", "--since", str(int(since)),
         "--filter", "type=container", "--filter", "event=create", "--format", "{{.Name}}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [name for name in proc.stdout.split() if name.startswith(prefix)]


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        pytest.param("missing.tar", "does not exist", id="missing-archive"),
        pytest.param("empty.tar", "is empty", id="empty-archive"),
        pytest.param("localhost/kindslurm-no-such-image:0", "is not in the local image store",
                     id="absent-image-name"),
    ],
)  # fmt: skip
def test_unloadable_preload_image_fails_preflight_before_any_cluster(
    image: str, workdir: Path, tmpdir_env: Path, entry: str, says: str
) -> None:
    (workdir / "empty.tar").touch()
    job = f"118{os.getpid()}"  # our own cluster-name prefix, to find creates of ours only
    entry = str(workdir / entry) if entry.endswith(".tar") else entry
    since = time.time() - 1
    run = run_runner(
        make_spec(workdir, node_image=image, preload_images=(entry,)),
        "echo ran > ran",
        tmpdir_env,
        SLURM_JOB_ID=job,
    )
    assert run.returncode == EXIT_PREFLIGHT_FAILED, run.stderr
    assert re.search(
        rf"preflight: \[fail\] preload (archive|image): {re.escape(entry)} {says}", run.stderr
    ), run.stderr
    assert "fix: " in run.stderr
    assert "not ready for Kind" in run.stderr and "nothing created" in run.stderr
    assert "kind create cluster" not in run.stderr
    assert "create: cluster" not in run.stderr
    assert not (workdir / "ran").exists()
    assert _container_creates_since(since, f"ks-{job}-") == []
    assert not list(tmpdir_env.iterdir())


# ---------------------------------------------------------------- failures ---


def test_never_ready_node_fails_create_with_logs(
    never_ready_image: str, workdir: Path, tmpdir_env: Path
) -> None:
    log_dir = workdir / "logs"
    run = run_runner(
        make_spec(workdir, node_image=never_ready_image, log_dir=str(log_dir)),
        "echo workload-ran > ran",
        tmpdir_env,
    )
    assert run.returncode == EXIT_CLUSTER_CREATE_FAILED, run.stderr
    assert "kind create cluster failed (exit code 1)" in run.stderr
    assert "could not find a log line" in run.stderr  # kind's own words
    assert not (workdir / "ran").exists()
    exported = log_dir / f"kind-logs-{run.cluster}"
    assert (exported / f"{run.cluster}-control-plane" / "inspect.json").is_file()
    assert run.stderr.index("kind logs exported") < run.stderr.index("delete: deleting cluster")
    check_gone(run, tmpdir_env)


def test_invalid_kind_config_creates_nothing(image: str, workdir: Path, tmpdir_env: Path) -> None:
    bad = workdir / "kind.yaml"
    bad.write_text("kind: Cluster\nnodes:\n- role: control-plane\n- role: master\n")
    before = leftovers()
    run = run_runner(
        make_spec(workdir, node_image=image, kind_config=str(bad)), "echo ran > ran", tmpdir_env
    )
    assert run.returncode == EXIT_BAD_CONFIG, run.stderr
    assert f"invalid kind config {bad}: nodes[1].role: unknown node role 'master'" in run.stderr
    assert not (workdir / "ran").exists()
    assert_nothing_left(before=before)
    assert not list(tmpdir_env.iterdir())


def test_failing_kind_delete_falls_back_to_podman(
    image: str, workdir: Path, tmpdir_env: Path, tmp_path: Path
) -> None:
    kind = tmp_path / "kind-without-delete"
    kind.write_text(
        '#!/bin/sh\nif [ "$1" = delete ]; then echo "ERROR: injected failure" >&2; exit 1; fi\n'
        'exec kind "$@"\n'
    )
    kind.chmod(0o755)
    run = run_runner(make_spec(workdir, node_image=image, kind_bin=str(kind)), "true", tmpdir_env)
    assert run.returncode == 0, run.stderr
    assert "kind delete failed (exited with code 1)" in run.stderr
    assert "injected failure" in run.stderr
    assert re.search(r"podman rm -f -t 0 ks-\S+-control-plane: ok", run.stderr)
    assert re.search(r"podman volume rm -f [0-9a-f]{64}: ok", run.stderr)
    assert "deleted (with the fallback)" in run.stderr
    check_gone(run, tmpdir_env)


def test_hanging_kind_delete_times_out_then_falls_back(
    image: str, workdir: Path, tmpdir_env: Path, tmp_path: Path
) -> None:
    kind = tmp_path / "kind-hanging-delete"
    kind.write_text('#!/bin/sh\nif [ "$1" = delete ]; then sleep 600; fi\nexec kind "$@"\n')
    kind.chmod(0o755)
    run = run_runner(
        make_spec(workdir, node_image=image, kind_bin=str(kind), delete_timeout=2.0),
        "true",
        tmpdir_env,
    )
    assert run.returncode == 0, run.stderr
    assert "kind delete failed (timed out after 2 s)" in run.stderr
    assert run.elapsed < 40
    check_gone(run, tmpdir_env)


def test_unremovable_cluster_is_exit_120(
    image: str, workdir: Path, tmpdir_env: Path, tmp_path: Path
) -> None:
    """Workload ok, but neither kind nor podman can delete: 120, and the cause is shown."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kind = bin_dir / "kind"
    kind.write_text('#!/bin/sh\n[ "$1" = delete ] && exit 1\nexec /usr/local/bin/kind "$@"\n')
    runtime = bin_dir / "podman-no-rm"
    runtime.write_text(
        '#!/bin/sh\ncase "$1" in rm) echo "Error: injected" >&2; exit 125;;\n'
        'volume) [ "$2" = rm ] && exit 125;; esac\nexec /usr/bin/podman "$@"\n'
    )
    kind.chmod(0o755)
    runtime.chmod(0o755)
    run = run_runner(
        make_spec(workdir, node_image=image, kind_bin=str(kind), runtime_bin=str(runtime)),
        "true",
        tmpdir_env,
    )
    try:
        assert run.returncode == 120, run.stderr
        assert "may be left behind; first error:" in run.stderr
        assert f"delete cluster --name {run.cluster}" in run.stderr
    finally:
        subprocess.run(
            ["kind", "delete", "cluster", "--name", run.cluster],
            env={**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"},
            capture_output=True,
            timeout=60,
        )
    check_gone(run, tmpdir_env)


def test_keep_on_failure_keeps_the_cluster_and_says_how_to_delete(
    image: str, workdir: Path, tmpdir_env: Path
) -> None:
    run = run_runner(
        make_spec(workdir, node_image=image, keep_on_failure=True), "exit 3", tmpdir_env
    )
    assert run.returncode == 3, run.stderr
    name = run.cluster
    try:
        assert kind_node_containers(name) == [f"{name}-control-plane"]
        command = re.search(r"KIND_EXPERIMENTAL_PROVIDER=podman kind delete cluster .*", run.stderr)
        assert command, run.stderr
        removal = re.search(r"rm -rf (\S+) (\S+)", run.stderr)
        assert removal, run.stderr
    finally:
        subprocess.run(
            ["kind", "delete", "cluster", "--name", name],
            env={**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"},
            capture_output=True,
            timeout=60,
        )
        if removal:
            subprocess.run(["rm", "-rf", removal.group(1), removal.group(2)], check=True)
    check_gone(run, tmpdir_env)


def test_exception_in_the_runner_still_deletes_the_cluster(
    image: str,
    workdir: Path,
    tmpdir_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """In-process run_lifecycle: a bug after the cluster exists must not leak it."""

    def broken(*args: object, **kwargs: object) -> dict[str, str]:
        raise RuntimeError("injected bug")

    monkeypatch.setattr(runner_module, "build_workload_env", broken)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    environ["TMPDIR"] = str(tmpdir_env)
    # Whatever was installed before (Snakemake's in-process API tests install
    # their own SIGTERM handler) must be back afterwards.
    before = signal.getsignal(signal.SIGTERM)
    code = runner_module.run_lifecycle(
        make_spec(workdir, node_image=image), ["sh", "-c", "echo ran > ran"], environ=environ
    )
    err = capfd.readouterr().err
    assert code == EXIT_CLUSTER_CREATE_FAILED, err
    assert "internal error: RuntimeError('injected bug')" in err
    assert not (workdir / "ran").exists()
    run = Run(code, err, 0.0)
    assert f"cluster {run.cluster} deleted" in err
    check_gone(run, tmpdir_env)
    assert signal.getsignal(signal.SIGTERM) is before, "handlers not restored"


# ----------------------------------------------------------------- signals ---


@pytest.mark.parametrize("when", ["at-once", "node-running"])
def test_sigterm_during_create(image: str, workdir: Path, tmpdir_env: Path, when: str) -> None:
    runner = Runner(
        make_spec(workdir, node_image=image), "echo ran > ran", tmpdir_env, workdir.parent / "log"
    )
    log = runner.wait_for(r"create: kind create cluster")
    if when == "node-running":
        # kind has started the node container and is still configuring it
        name = CLUSTER_NAME.search(log).group(1)  # type: ignore[union-attr]
        deadline = time.monotonic() + 30
        while not kind_node_containers(name):
            assert time.monotonic() < deadline, "the node container never appeared"
            time.sleep(0.05)
    runner.signal(signal.SIGTERM)
    run = runner.finish()
    assert run.returncode == 143, run.stderr
    assert "received SIGTERM" in run.stderr
    assert not (workdir / "ran").exists()
    check_gone(run, tmpdir_env)
    leftover_logs = subprocess.run(
        ["pgrep", "-f", f"podman logs -f {run.cluster}"], capture_output=True, text=True
    )
    assert leftover_logs.stdout == "", "kind's podman logs -f outlived it"


# Relative paths: the workload's cwd is the workdir, with or without a cluster.
SLEEPER = "echo $$ > pid; sleep 300 & echo $! > child.tmp; mv child.tmp child; wait"


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)],
    ids=["SIGTERM", "SIGINT", "SIGHUP"],
)
def test_signal_during_workload(
    image: str, workdir: Path, tmpdir_env: Path, signum: int, code: int
) -> None:
    runner = Runner(
        make_spec(workdir, node_image=image), SLEEPER, tmpdir_env, workdir.parent / "log"
    )
    runner.wait_for(r"workload: running")
    wait_file(workdir / "child")
    runner.signal(signum)
    run = runner.finish()
    assert run.returncode == code, run.stderr
    assert f"received {signal.Signals(signum).name}" in run.stderr
    for marker in ("pid", "child"):
        pid = int((workdir / marker).read_text())
        assert not pid_alive(pid), f"workload process {marker} {pid} survived"
    check_gone(run, tmpdir_env)


def test_workload_ignoring_sigterm_is_killed_after_its_grace(
    image: str, workdir: Path, tmpdir_env: Path
) -> None:
    script = "trap '' TERM; echo $$ > pid; while :; do sleep 0.1; done"
    runner = Runner(
        make_spec(workdir, node_image=image, workload_term_timeout=1.0),
        script,
        tmpdir_env,
        workdir.parent / "log",
    )
    runner.wait_for(r"workload: running")
    wait_file(workdir / "pid")
    runner.signal(signal.SIGTERM)
    sent = time.monotonic()
    run = runner.wait_for(r"workload: exited")
    assert time.monotonic() - sent < 6
    assert "did not stop within 1 s: SIGKILL" in run
    result = runner.finish()
    assert result.returncode == 143
    check_gone(result, tmpdir_env)


def test_second_sigterm_during_cleanup_does_not_stop_it(
    image: str, workdir: Path, tmpdir_env: Path, tmp_path: Path
) -> None:
    kind = tmp_path / "kind-slow-delete"
    kind.write_text('#!/bin/sh\n[ "$1" = delete ] && sleep 2\nexec kind "$@"\n')
    kind.chmod(0o755)
    runner = Runner(
        make_spec(workdir, node_image=image, kind_bin=str(kind)),
        "sleep 300",
        tmpdir_env,
        workdir.parent / "log",
    )
    runner.wait_for(r"workload: running")
    runner.signal(signal.SIGTERM)
    runner.wait_for(r"delete: deleting cluster")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        time.sleep(0.2)
        runner.signal(signum)
    run = runner.finish()
    assert run.returncode == 143, run.stderr
    assert run.stderr.count("during cleanup: cleanup goes on") == 3
    assert f"cluster {run.cluster} deleted" in run.stderr
    check_gone(run, tmpdir_env)


# ---------------------------------------------------------------- parallel ---


def test_four_parallel_runners_get_four_clusters(
    image: str, tmp_path: Path, tmpdir_env: Path
) -> None:
    if not kind_node_containers() and not _any_kind_container():
        # Exercise the `kind` network race when nobody uses the network.
        subprocess.run(["podman", "network", "rm", "kind"], capture_output=True, timeout=60)
    runners = []
    for index in range(4):
        workdir = tmp_path / f"w{index}"
        workdir.mkdir()
        spec = make_spec(workdir, node_image=image, create_lock=index % 2 == 0)
        runners.append(
            Runner(
                spec,
                'echo "$K8S_CLUSTER_NAME $KUBECONFIG" > seen; sleep 2',
                tmpdir_env,
                tmp_path / f"log{index}",
            )
        )
    runs = [r.finish(timeout=180) for r in runners]
    for run in runs:
        assert run.returncode == 0, run.stderr
    seen = [(tmp_path / f"w{i}" / "seen").read_text().split() for i in range(4)]
    assert len({name for name, _ in seen}) == 4
    assert len({kubeconfig for _, kubeconfig in seen}) == 4
    assert {name for name, _ in seen} == {run.cluster for run in runs}
    for run in runs:
        assert_nothing_left(run.cluster, tmpdir_env)
    assert not list(tmpdir_env.iterdir())
    lock = Path("/tmp/kindslurm-create.lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o666


def _any_kind_container() -> bool:
    proc = subprocess.run(
        ["podman", "ps", "-a", "-q", "--filter", "label=io.x-k8s.kind.cluster"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return bool(proc.stdout.strip())


# -------------------------------------------------------------- no cluster ---


def test_without_cluster_runs_the_command_only(workdir: Path, tmpdir_env: Path) -> None:
    before = leftovers()
    run = run_runner(
        make_spec(workdir, cluster=False),
        'printf "%s|%s" "${K8S_CLUSTER_NAME-unset}" "$PWD" > seen; exit 5',
        tmpdir_env,
    )
    assert run.returncode == 5, run.stderr
    assert (workdir / "seen").read_text() == f"unset|{workdir}"
    assert "create:" not in run.stderr
    assert "workload: exited with code 5" in run.stderr
    assert run.elapsed < 2
    assert_nothing_left(before=before)


def test_without_cluster_forwards_sigterm(workdir: Path, tmpdir_env: Path) -> None:
    runner = Runner(make_spec(workdir, cluster=False), SLEEPER, tmpdir_env, workdir.parent / "log")
    wait_file(workdir / "child")
    runner.signal(signal.SIGTERM)
    run = runner.finish(timeout=30)
    assert run.returncode == 143, run.stderr
    assert not pid_alive(int((workdir / "child").read_text()))


def test_bad_spec_is_exit_117(workdir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake_executor_plugin_kindslurm.runner", "--spec", '{"x":1}',
         "--", "true"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=30,
    )  # fmt: skip
    assert proc.returncode == EXIT_BAD_CONFIG
    assert "unknown runner spec keys: x" in proc.stderr
