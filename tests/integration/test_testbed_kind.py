"""Checks the Kind half of the test bed (testbed/kind.sh) with the real `kind` binary.

The node image is the locally built STAND-IN (``kind.sh build-standin-image``):
it has no kubelet or API server, but it answers every command kind runs in a
node, so kind's create / kubeconfig export / load / export logs / delete flow
runs for real here: real Podman containers, labels, volumes, bind mounts and
published ports. Each test makes its own cluster(s), named ``kst-...`` (not the
plugin's ``ks-`` prefix), deletes them in a ``finally`` and checks that no
container or volume of theirs is left.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import NEVER_READY_IMAGE, missing

pytestmark = pytest.mark.integration

KIND_ENV = {**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"}
CLUSTER_LABEL = "io.x-k8s.kind.cluster"
# What kind waits for in the node's log (kind 0.27); the never-ready image never prints it.
READY_REGEX = "Reached target .*Multi-User System.*|detected cgroup v1"
CREATE_TIMEOUT_S = 180.0


def _run(*argv: str, timeout: float = 120.0, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        argv, capture_output=True, text=True, timeout=timeout, check=False, env=KIND_ENV, **kwargs
    )


def _name(tag: str) -> str:
    # kind: ^[a-z0-9.-]+$, and short (node names are <cluster>-control-plane).
    return f"kst-{tag}-{uuid.uuid4().hex[:6]}"


def _containers(cluster: str) -> list[str]:
    proc = _run(
        "podman",
        "ps",
        "-a",
        "--filter",
        f"label={CLUSTER_LABEL}={cluster}",
        "--format",
        "{{.Names}}",
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def _volumes(cluster: str) -> list[str]:
    # kind labels each node's /var volume with "<node name>=true".
    found: list[str] = []
    for role in ("control-plane", "worker"):
        proc = _run("podman", "volume", "ls", "--quiet", "--filter", f"label={cluster}-{role}")
        assert proc.returncode == 0, proc.stderr
        found += proc.stdout.split()
    return found


def _assert_nothing_left(cluster: str) -> None:
    assert _containers(cluster) == [], f"containers of {cluster} left behind"
    assert _volumes(cluster) == [], f"volumes of {cluster} left behind"
    clusters = _run("kind", "get", "clusters").stdout.split()
    assert cluster not in clusters


def _mount_config(tmp_path: Path, host_dir: Path) -> Path:
    config = tmp_path / "kind-config.yaml"
    config.write_text(
        "kind: Cluster\n"
        "apiVersion: kind.x-k8s.io/v1alpha4\n"
        "nodes:\n"
        "- role: control-plane\n"
        "  extraMounts:\n"
        f"  - hostPath: {host_dir}\n"
        "    containerPath: /app\n"
    )
    return config


def _create_argv(name: str, image: str, kubeconfig: Path, config: Path | None) -> list[str]:
    argv = [
        "kind",
        "create",
        "cluster",
        "--name",
        name,
        "--image",
        image,
        "--kubeconfig",
        str(kubeconfig),
    ]
    if config is not None:
        argv += ["--config", str(config)]
    return argv


def _delete(name: str, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return _run("kind", "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig))


@contextmanager
def kind_cluster(
    name: str, image: str, tmp_path: Path, config: Path | None = None
) -> Iterator[Path]:
    """Creates cluster `name`, yields its private kubeconfig, always deletes it."""
    kubeconfig = tmp_path / f"{name}.kubeconfig"
    try:
        proc = _run(*_create_argv(name, image, kubeconfig, config), timeout=CREATE_TIMEOUT_S)
        assert proc.returncode == 0, f"kind create failed:\n{proc.stdout}\n{proc.stderr}"
        yield kubeconfig
    finally:
        _delete(name, kubeconfig)
        _assert_nothing_left(name)


def _node_exec(node: str, *argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return _run("podman", "exec", *(["-i"] if stdin is not None else []), node, *argv, input=stdin)


def test_create_mount_kubeconfig_delete(kind_ready: str, tmp_path: Path) -> None:
    name = _name("flow")
    node = f"{name}-control-plane"
    host_dir = tmp_path / "app"
    host_dir.mkdir()
    config = _mount_config(tmp_path, host_dir)
    with kind_cluster(name, kind_ready, tmp_path, config) as kubeconfig:
        # the node container carries kind's labels
        assert _containers(name) == [node]
        role = _run(
            "podman", "inspect", "--format", '{{ index .Config.Labels "io.x-k8s.kind.role" }}', node
        )
        assert role.stdout.strip() == "control-plane"
        # extraMounts: a write in the node reaches the host directory
        wrote = _node_exec(node, "sh", "-c", "echo hi > /app/x")
        assert wrote.returncode == 0, wrote.stderr
        assert (host_dir / "x").read_text() == "hi\n"
        # kubeconfig: kind's context, server = the port Podman published for 6443
        port = _run("podman", "port", node, "6443/tcp").stdout.strip()
        assert re.fullmatch(r"127\.0\.0\.1:\d+", port), port
        view = _run(
            "kubectl",
            "--kubeconfig",
            str(kubeconfig),
            "config",
            "view",
            "-o",
            "jsonpath={.current-context} {.clusters[0].cluster.server}",
        )
        assert view.returncode == 0, view.stderr
        assert view.stdout == f"kind-{name} https://{port}"
        # kind reads admin.conf back from the node for get kubeconfig too
        again = _run("kind", "get", "kubeconfig", "--name", name)
        assert again.returncode == 0, again.stderr
        assert f"server: https://{port}" in again.stdout
        assert name in _run("kind", "get", "clusters").stdout.split()

        started = time.monotonic()
        deleted = _delete(name, kubeconfig)
        assert deleted.returncode == 0, deleted.stderr
        assert time.monotonic() - started < 30
        _assert_nothing_left(name)
        # kind removes its context from the kubeconfig it wrote
        assert f"kind-{name}" not in kubeconfig.read_text()


def test_load_image_archive_is_listed_in_node(kind_ready: str, tmp_path: Path) -> None:
    name = _name("load")
    node = f"{name}-control-plane"
    image = f"localhost/kst-payload-{uuid.uuid4().hex[:8]}:1"
    rootfs = tmp_path / "payload"
    rootfs.mkdir()
    (rootfs / "hello").write_text("payload\n")
    archive = tmp_path / "payload.tar"
    try:
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = _run("podman", "import", "--quiet", "-", image, stdin=tar.stdout)
        tar.wait(timeout=30)
        assert imported.returncode == 0, imported.stderr
        image_id = imported.stdout.strip().removeprefix("sha256:")
        saved = _run("podman", "save", "--quiet", "-o", str(archive), image)
        assert saved.returncode == 0, saved.stderr
        with kind_cluster(name, kind_ready, tmp_path):
            absent = _node_exec(node, "crictl", "inspecti", image)
            assert absent.returncode != 0
            loaded = _run("kind", "load", "image-archive", str(archive), "--name", name)
            assert loaded.returncode == 0, loaded.stderr
            listed = _node_exec(node, "crictl", "images")
            assert image.rsplit(":", 1)[0] in listed.stdout
            inspected = _node_exec(node, "crictl", "inspecti", image)
            assert inspected.returncode == 0, inspected.stderr
            assert f'"sha256:{image_id}"' in inspected.stdout
            refs = _node_exec(node, "ctr", "--namespace=k8s.io", "images", "list", "-q")
            assert image in refs.stdout.split()
    finally:
        _run("podman", "rmi", "--force", image)


def test_export_logs(kind_ready: str, tmp_path: Path) -> None:
    name = _name("logs")
    node = f"{name}-control-plane"
    out = tmp_path / "logs"
    with kind_cluster(name, kind_ready, tmp_path):
        exported = _run("kind", "export", "logs", str(out), "--name", name)
        assert exported.returncode == 0, exported.stderr
        for file in (
            "journal.log",
            "kubelet.log",
            "containerd.log",
            "images.log",
            "kubernetes-version.txt",
            "inspect.json",
            "serial.log",
        ):
            assert (out / node / file).is_file(), file
        # the node's /var/log came through kind's `sh -c 'tar --hard-dereference ...'`
        calls = (out / node / "standin" / "calls.log").read_text()
        assert "kubeadm 'init'" in calls
        assert re.search(READY_REGEX, (out / node / "serial.log").read_text())


@pytest.mark.slow
def test_two_clusters_in_parallel(kind_ready: str, tmp_path: Path) -> None:
    # Parallel creates race to make the `kind` network when it does not exist
    # yet; that is kind's behaviour, not what this test is about.
    if _run("podman", "network", "exists", "kind").returncode != 0:
        warm = _name("warm")
        with kind_cluster(warm, kind_ready, tmp_path):
            pass
    names = [_name("par"), _name("par")]
    kubeconfigs = {n: tmp_path / f"{n}.kubeconfig" for n in names}
    mounts = {n: tmp_path / n for n in names}
    procs: dict[str, subprocess.Popen[str]] = {}
    try:
        for n in names:
            mounts[n].mkdir()
            argv = _create_argv(n, kind_ready, kubeconfigs[n], _mount_config(mounts[n], mounts[n]))
            procs[n] = subprocess.Popen(
                argv, env=KIND_ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        outputs = {n: p.communicate(timeout=CREATE_TIMEOUT_S)[0] for n, p in procs.items()}
        for n, p in procs.items():
            assert p.returncode == 0, f"{n}: {outputs[n]}"
        ports = set()
        for n in names:
            node = f"{n}-control-plane"
            assert _containers(n) == [node]
            assert _node_exec(node, "sh", "-c", f"echo {n} > /app/who").returncode == 0
            assert (mounts[n] / "who").read_text() == f"{n}\n"
            ports.add(_run("podman", "port", node, "6443/tcp").stdout.strip())
            server = _run(
                "kubectl",
                "--kubeconfig",
                str(kubeconfigs[n]),
                "config",
                "view",
                "-o",
                "jsonpath={.clusters[0].cluster.server}",
            ).stdout
            assert server.startswith("https://127.0.0.1:")
        assert len(ports) == 2
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for n in names:
            _delete(n, kubeconfigs[n])
        for n in names:
            _assert_nothing_left(n)


@pytest.mark.slow
def test_never_ready_node_fails_create_and_leaves_nothing(kind_ready: str, tmp_path: Path) -> None:
    if _run("podman", "image", "exists", NEVER_READY_IMAGE).returncode != 0:
        missing(
            f"never-ready stand-in image {NEVER_READY_IMAGE} (testbed/kind.sh build-standin-image)"
        )
    name = _name("never")
    kubeconfig = tmp_path / f"{name}.kubeconfig"
    try:
        started = time.monotonic()
        proc = _run(
            *_create_argv(name, NEVER_READY_IMAGE, kubeconfig, None), timeout=CREATE_TIMEOUT_S
        )
        elapsed = time.monotonic() - started
        assert proc.returncode != 0
        assert "could not find a log line that matches" in proc.stderr
        # kind's own wait for the boot line is 30 s
        assert 25 < elapsed < 150, elapsed
        # kind removed the node (and its volume) itself, without `kind delete`
        assert _containers(name) == []
        assert _volumes(name) == []
    finally:
        _delete(name, kubeconfig)
        _assert_nothing_left(name)


def test_standin_node_stops_promptly(kind_ready: str) -> None:
    """The stand-in init handles SIGTERM as PID 1, so stopping a node is fast."""
    label = f"io.kindslurm.test={_name('stop')}"
    started = _run("podman", "run", "--detach", "--tty", "--label", label, kind_ready)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while not re.search(READY_REGEX, _run("podman", "logs", container).stdout):
            assert time.monotonic() < deadline, "stand-in init never printed the ready line"
            time.sleep(0.1)
        t0 = time.monotonic()
        stopped = _run("podman", "stop", "--time", "10", container)
        assert stopped.returncode == 0, stopped.stderr
        assert time.monotonic() - t0 < 5
    finally:
        _run("podman", "rm", "--force", "--time", "0", container)
        left = _run("podman", "ps", "-a", "-q", "--filter", f"label={label}")
        assert left.stdout.strip() == ""
