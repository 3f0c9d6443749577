"""Preflight: pure classify_* functions over gathered facts, parsers over recorded /proc text."""

from __future__ import annotations

from pathlib import Path

import pytest

from snakemake_executor_plugin_kindslurm.kind.preflight import (
    DISK_FAIL_BYTES,
    DISK_WARN_BYTES,
    GIB,
    PODMAN_INFO_FORMAT,
    BinaryFact,
    CheckResult,
    DiskFact,
    PreflightFacts,
    PreloadFact,
    Status,
    asks_rootless,
    build_image_exists_argv,
    classify_binary,
    classify_cgroups,
    classify_disk,
    classify_inotify,
    classify_node_image,
    classify_preflight,
    classify_preload,
    classify_runtime_access,
    classify_xdg_runtime_dir,
    format_preflight,
    is_image_archive,
    parse_cgroup2_mountpoint,
    parse_int,
    parse_own_cgroup,
    parse_runtime_info,
    preflight_failed,
    runtime_service,
    runtime_storage_dir,
    version_argvs,
)
from snakemake_executor_plugin_kindslurm.spec import RunnerSpec

DATA = Path(__file__).parent.parent / "data" / "kind"


def _data(name: str) -> str:
    return (DATA / name).read_text()


# ---------------------------------------------------------------- binaries ---


@pytest.mark.parametrize(
    ("fact", "status", "message"),
    [
        pytest.param(
            BinaryFact(
                "kind", ("kind", "version"), "/usr/local/bin/kind", 0, _data("kind-version.txt")
            ),
            Status.OK,
            "/usr/local/bin/kind: kind v0.27.0 go1.24.4 linux/amd64",
            id="kind-ok",
        ),
        pytest.param(
            BinaryFact(
                "runtime", ("podman", "version"), "/usr/bin/podman", 0, _data("podman-version.txt")
            ),
            Status.OK,
            "/usr/bin/podman: Version: 4.3.1",
            id="podman-ok-version-line",
        ),
        pytest.param(
            BinaryFact(
                "kubectl",
                ("kubectl", "version", "--client"),
                "/usr/bin/kubectl",
                0,
                _data("kubectl-version-client.txt"),
            ),
            Status.OK,
            "Client Version: v1.32",
            id="kubectl-ok",
        ),
        pytest.param(
            BinaryFact("kind", ("kind", "version"), None),
            Status.FAIL,
            "'kind' not found on PATH",
            id="missing",
        ),
        pytest.param(
            BinaryFact(
                "runtime",
                ("docker", "version"),
                "/usr/bin/docker",
                1,
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
            ),
            Status.FAIL,
            "`docker version` failed (exited with code 1): Cannot connect to the Docker daemon",
            id="runtime-broken",
        ),
        pytest.param(
            BinaryFact("kind", ("kind", "version"), "/bin/kind", None, "", "timed out after 10 s"),
            Status.FAIL,
            "failed (timed out after 10 s)",
            id="timeout",
        ),
    ],
)
def test_classify_binary(fact: BinaryFact, status: Status, message: str) -> None:
    result = classify_binary(fact)
    assert result.status is status
    assert message in result.message
    assert result.name == f"{fact.name} binary"
    if status is not Status.OK:
        assert result.fix


def test_version_argvs_use_the_spec_paths() -> None:
    spec = RunnerSpec(kind_bin="/k/kind", kubectl_bin="/k/kubectl", runtime_bin="/k/podman")
    assert version_argvs(spec) == [
        ("kind", ["/k/kind", "version"]),
        ("kubectl", ["/k/kubectl", "version", "--client"]),
        ("runtime", ["/k/podman", "version"]),
    ]


def test_version_argvs_ask_podman_info_when_rootless_matters() -> None:
    spec = RunnerSpec(runtime_bin="/k/podman")
    runtime = dict(version_argvs(spec, ask_rootless=True))["runtime"]
    assert runtime == ["/k/podman", "info", "--format", PODMAN_INFO_FORMAT]


@pytest.mark.parametrize(
    ("provider", "euid", "service", "expected"),
    [
        pytest.param("podman", 0, None, False, id="root-local-fast-probe"),
        pytest.param("podman", 0, "unix:///run/p.sock", True, id="root-via-service"),
        pytest.param("podman", 1000, None, False, id="user-local-is-rootless"),
        pytest.param("podman", 1000, "unix:///run/p.sock", True, id="user-via-service"),
        pytest.param("docker", 1000, "unix:///run/d.sock", False, id="docker-never"),
    ],
)  # fmt: skip
def test_asks_rootless(provider: str, euid: int, service: str | None, expected: bool) -> None:
    assert asks_rootless(provider, euid, service) is expected


def test_runtime_service_reads_the_providers_variable() -> None:
    env = {"CONTAINER_HOST": " unix:///run/p.sock ", "DOCKER_HOST": "tcp://h:2375"}
    assert runtime_service("podman", env) == "unix:///run/p.sock"
    assert runtime_service("docker", env) == "tcp://h:2375"
    assert runtime_service("podman", {"CONTAINER_HOST": ""}) is None
    assert runtime_service("podman", {}) is None


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("version 4.3.1 rootless=false cgroups=v1\n", False),
        ("version 5.4.2 rootless=true cgroups=v2\n", True),
        ("version 4.3.1 rootless= cgroups=v1", None),
        ("Error: unable to connect to Podman socket", None),
        ("", None),
    ],
)
def test_parse_runtime_info(output: str, expected: bool | None) -> None:
    assert parse_runtime_info(output) is expected


@pytest.mark.parametrize(
    ("euid", "service", "rootless", "status", "message"),
    [
        pytest.param(0, None, False, Status.OK, "local Podman (rootful, as root)", id="root"),
        pytest.param(1000, None, True, Status.OK, "rootless, as uid 1000", id="rootless"),
        pytest.param(
            1000, "unix:///run/p.sock", False, Status.OK,
            "Podman service at unix:///run/p.sock (rootful)", id="shared-service",
        ),
        pytest.param(
            1000, "unix:///run/p.sock", None, Status.FAIL,
            "CONTAINER_HOST=unix:///run/p.sock is set but the Podman service there did not answer",
            id="service-down",
        ),
    ],
)  # fmt: skip
def test_classify_runtime_access(
    euid: int, service: str | None, rootless: bool | None, status: Status, message: str
) -> None:
    result = classify_runtime_access("podman", euid, service, rootless)
    assert result.status is status
    assert message in result.message
    if status is Status.FAIL:
        assert "unset CONTAINER_HOST" in result.fix and "system service" in result.fix


# ----------------------------------------------------------------- cgroups ---


def test_parsers_on_recorded_hybrid_host() -> None:
    assert (
        parse_cgroup2_mountpoint(_data("proc-self-mounts-hybrid.txt")) == "/sys/fs/cgroup/unified"
    )
    assert parse_own_cgroup(_data("proc-self-cgroup-hybrid.txt")) == "/"


def test_parsers_on_unified_host() -> None:
    assert parse_cgroup2_mountpoint(_data("proc-self-mounts-v2.txt")) == "/sys/fs/cgroup"
    assert (
        parse_own_cgroup(_data("proc-self-cgroup-v2.txt"))
        == "/user.slice/user-1000.slice/user@1000.service/app.slice/slurm-job.scope"
    )
    assert parse_cgroup2_mountpoint("proc /proc proc rw 0 0\n") is None
    assert parse_own_cgroup("4:memory:/x\n") is None


@pytest.mark.parametrize(
    ("rootless", "mountpoint", "controllers", "status", "message"),
    [
        pytest.param(False, "/sys/fs/cgroup/unified", None, Status.OK, "rootful", id="rootful-any"),
        pytest.param(
            True, "/sys/fs/cgroup/unified", (), Status.FAIL, "only at /sys/fs/cgroup/unified",
            id="rootless-hybrid",
        ),
        pytest.param(True, None, None, Status.FAIL, "not mounted", id="rootless-v1-only"),
        pytest.param(
            True, "/sys/fs/cgroup", ("pids", "io"), Status.FAIL, "cpu, memory are not delegated",
            id="rootless-no-delegation",
        ),
        pytest.param(
            True, "/sys/fs/cgroup", ("cpuset", "cpu", "io", "memory", "pids"), Status.OK,
            "cgroup v2", id="rootless-delegated",
        ),
    ],
)  # fmt: skip
def test_classify_cgroups(
    rootless: bool,
    mountpoint: str | None,
    controllers: tuple[str, ...] | None,
    status: Status,
    message: str,
) -> None:
    result = classify_cgroups(rootless, mountpoint, "/user.slice/x", controllers)
    assert result.status is status
    assert message in result.message


@pytest.mark.parametrize(
    ("euid", "path", "owner", "status", "message"),
    [
        pytest.param(0, None, None, Status.OK, "rootful", id="root"),
        pytest.param(1000, None, None, Status.FAIL, "not set", id="unset"),
        pytest.param(1000, "/run/user/1000", None, Status.FAIL, "does not exist", id="missing"),
        pytest.param(1000, "/run/user/1000", 0, Status.FAIL, "owned by uid 0", id="foreign"),
        pytest.param(1000, "/run/user/1000", 1000, Status.OK, "/run/user/1000", id="ok"),
    ],
)
def test_classify_xdg_runtime_dir(
    euid: int, path: str | None, owner: int | None, status: Status, message: str
) -> None:
    result = classify_xdg_runtime_dir(euid != 0, euid, path, owner)
    assert result.status is status
    assert message in result.message


# ---------------------------------------------------------------- inotify ---


@pytest.mark.parametrize(
    ("watches", "instances", "status", "message"),
    [
        pytest.param(524288, 512, Status.OK, "max_user_watches=524288", id="ok"),
        pytest.param(
            192536, 128, Status.WARN,
            "max_user_watches=192536 < 524288; max_user_instances=128 < 512", id="this-vm",
        ),
        pytest.param(1048576, 128, Status.WARN, "max_user_instances=128 < 512", id="instances"),
        pytest.param(None, 128, Status.WARN, "cannot read", id="unreadable"),
    ],
)  # fmt: skip
def test_classify_inotify(
    watches: int | None, instances: int | None, status: Status, message: str
) -> None:
    result = classify_inotify(watches, instances)
    assert result.status is status
    assert message in result.message
    if status is Status.WARN and watches:
        assert "sysctl -w fs.inotify.max_user_watches=524288" in result.fix


def test_parse_int() -> None:
    assert parse_int("192536\n") == 192536
    assert parse_int(None) is None
    assert parse_int("x") is None


# ------------------------------------------------------------------- disk ---


@pytest.mark.parametrize(
    ("free", "status"),
    [
        pytest.param(80 * GIB, Status.OK, id="plenty"),
        pytest.param(DISK_WARN_BYTES - 1, Status.WARN, id="low"),
        pytest.param(DISK_FAIL_BYTES - 1, Status.FAIL, id="too-low"),
        pytest.param(None, Status.WARN, id="unknown"),
    ],
)
def test_classify_disk(free: int | None, status: Status) -> None:
    result = classify_disk(DiskFact("TMPDIR", "/tmp", free, "" if free else "EACCES"))
    assert result.status is status
    assert result.name == "free disk (TMPDIR)"


def test_runtime_storage_dir() -> None:
    assert runtime_storage_dir("podman", False, {}) == "/var/lib/containers/storage"
    assert (
        runtime_storage_dir("podman", True, {"HOME": "/home/a"})
        == "/home/a/.local/share/containers/storage"
    )
    assert runtime_storage_dir("podman", True, {"XDG_DATA_HOME": "/d"}) == "/d/containers/storage"
    assert runtime_storage_dir("docker", True, {}) == "/var/lib/docker"
    # a user on a rootful service: the service's storage, not the user's
    assert (
        runtime_storage_dir("podman", False, {"HOME": "/home/a"}) == "/var/lib/containers/storage"
    )


# ------------------------------------------------------------- node image ---


@pytest.mark.parametrize(
    ("image", "is_file", "present", "status", "message"),
    [
        pytest.param(None, False, None, Status.OK, "default", id="default"),
        pytest.param("localhost/n:1", False, True, Status.OK, "present", id="present"),
        pytest.param(
            "localhost/n:1", False, False, Status.WARN, "kind will try to pull", id="absent"
        ),
        pytest.param("/img/node.tar", True, None, Status.FAIL, "is a file", id="archive"),
        pytest.param("localhost/n:1", False, None, Status.OK, "not checked", id="unknown"),
    ],
)
def test_classify_node_image(
    image: str | None, is_file: bool, present: bool | None, status: Status, message: str
) -> None:
    result = classify_node_image(image, is_file, present)
    assert result.status is status
    assert message in result.message


# ---------------------------------------------------------------- overall ---


def _facts(**changes: object) -> PreflightFacts:
    base: dict[str, object] = {
        "euid": 1000,
        "provider": "podman",
        "binaries": (BinaryFact("kind", ("kind", "version"), "/bin/kind", 0, "kind v0.27.0"),),
        "cgroup2_mountpoint": "/sys/fs/cgroup",
        "own_cgroup": "/user.slice",
        "cgroup_controllers": ("cpu", "memory", "pids"),
        "xdg_runtime_dir": "/run/user/1000",
        "xdg_runtime_dir_owner": 1000,
        "inotify_max_user_watches": 524288,
        "inotify_max_user_instances": 512,
        "disks": (DiskFact("TMPDIR", "/tmp", 80 * GIB),),
        "node_image": None,
    }
    base.update(changes)
    return PreflightFacts(**base)  # type: ignore[arg-type]


def test_classify_preflight_all_ok_in_a_stable_order() -> None:
    results = classify_preflight(_facts())
    assert [r.name for r in results] == [
        "kind binary",
        "container runtime access",
        "cgroups",
        "XDG_RUNTIME_DIR",
        "inotify limits",
        "free disk (TMPDIR)",
        "node image",
    ]
    assert not preflight_failed(results)


def test_classify_preflight_user_on_a_rootful_service_needs_no_cgroup_v2() -> None:
    """A regular user on a hybrid cgroup v1 host, through a rootful Podman
    service (CONTAINER_HOST): the rootless requirements do not apply."""
    facts = _facts(
        cgroup2_mountpoint="/sys/fs/cgroup/unified",
        xdg_runtime_dir=None,
        runtime_service="unix:///run/p.sock",
        runtime_rootless=False,
    )
    results = classify_preflight(facts)
    assert not preflight_failed(results), format_preflight(results)
    by_name = {r.name: r for r in results}
    assert "(rootful)" in by_name["container runtime access"].message
    assert by_name["cgroups"].status is Status.OK


def test_classify_preflight_rootless_service_still_needs_cgroup_v2() -> None:
    facts = _facts(
        cgroup2_mountpoint="/sys/fs/cgroup/unified",
        runtime_service="unix:///run/user/1000/podman/podman.sock",
        runtime_rootless=True,
    )
    failed = [r.name for r in classify_preflight(facts) if r.status is Status.FAIL]
    assert failed == ["cgroups"]


def test_classify_preflight_unreachable_service_fails_once() -> None:
    facts = _facts(
        cgroup2_mountpoint="/sys/fs/cgroup/unified",
        xdg_runtime_dir=None,
        runtime_service="unix:///run/p.sock",
        runtime_rootless=None,
    )
    results = classify_preflight(facts)
    failed = [r.name for r in results if r.status is Status.FAIL]
    assert failed == ["container runtime access"]
    assert "cgroups" not in [r.name for r in results]


def test_classify_preflight_docker_skips_podman_checks() -> None:
    names = [r.name for r in classify_preflight(_facts(provider="docker"))]
    assert "cgroups" not in names
    assert "XDG_RUNTIME_DIR" not in names


def test_classify_preflight_collects_every_failure() -> None:
    results = classify_preflight(
        _facts(cgroup2_mountpoint="/sys/fs/cgroup/unified", xdg_runtime_dir=None)
    )
    failed = [r.name for r in results if r.status is Status.FAIL]
    assert failed == ["cgroups", "XDG_RUNTIME_DIR"]
    assert preflight_failed(results)
    text = format_preflight(results)
    assert "[fail] cgroups:" in text
    assert "fix: export XDG_RUNTIME_DIR" in text


def test_describe_hides_the_fix_of_passing_checks() -> None:
    assert CheckResult("x", Status.OK, "fine", "do y").describe() == "[ok] x: fine"
    assert (
        CheckResult("x", Status.WARN, "meh", "do y").describe() == "[warn] x: meh\n       fix: do y"
    )


# --------------------------------------------------------- preload images ---


@pytest.mark.parametrize(
    ("entry", "archive"),
    [
        pytest.param("/img/app.tar", True, id="tar"),
        pytest.param("images/app.tar.gz", True, id="relative-tar-gz"),
        pytest.param("app.tgz", True, id="tgz"),
        pytest.param("app.oci", True, id="oci"),
        pytest.param("/img/app-archive", True, id="absolute-without-suffix"),
        pytest.param("localhost/app:1", False, id="local-name"),
        pytest.param("docker.io/library/busybox:1.36", False, id="registry-name"),
        pytest.param("app.tar:1", False, id="tag-looks-like-suffix"),
    ],
)
def test_is_image_archive(entry: str, archive: bool) -> None:
    assert is_image_archive(entry) is archive


@pytest.mark.parametrize(
    ("fact", "status", "message", "fix"),
    [
        pytest.param(
            PreloadFact("/img/app.tar", True), Status.OK, "/img/app.tar is readable", "",
            id="archive-ok",
        ),
        pytest.param(
            PreloadFact("/img/app.tar", True, "does not exist"), Status.FAIL,
            "/img/app.tar does not exist", "podman save -o /img/app.tar IMAGE",
            id="archive-missing",
        ),
        pytest.param(
            PreloadFact("/img/app.tar", True, "is not readable by uid 1000"), Status.FAIL,
            "/img/app.tar is not readable by uid 1000", "kind_preload_images",
            id="archive-unreadable",
        ),
        pytest.param(
            PreloadFact("/img", True, "is a directory, not an archive file"), Status.FAIL,
            "is a directory", "correct the path", id="archive-is-a-directory",
        ),
        pytest.param(
            PreloadFact("localhost/app:1", False, present=True), Status.OK,
            "localhost/app:1 is present", "", id="name-present",
        ),
        pytest.param(
            PreloadFact("localhost/app:1", False, present=False), Status.FAIL,
            "not in the local image store of podman (kind load does not pull)",
            "podman pull localhost/app:1", id="name-absent",
        ),
        pytest.param(
            PreloadFact("localhost/app:1", False, present=None), Status.WARN,
            "could not ask podman", "", id="name-unknown",
        ),
    ],
)  # fmt: skip
def test_classify_preload(fact: PreloadFact, status: Status, message: str, fix: str) -> None:
    result = classify_preload(fact, "podman")
    assert result.status is status
    assert message in result.message
    assert fix in result.fix
    assert result.name == ("preload archive" if fact.archive else "preload image")


def test_classify_preflight_fails_on_a_missing_preload_archive_after_the_node_checks() -> None:
    results = classify_preflight(
        _facts(
            preload=(
                PreloadFact("/img/a.tar", True, "does not exist"),
                PreloadFact("localhost/b:1", False, present=True),
            ),
            runtime_bin="/usr/bin/podman",
        )
    )
    assert [r.name for r in results][-3:] == ["node image", "preload archive", "preload image"]
    assert preflight_failed(results)
    assert "fix: write the archive there first (e.g. `/usr/bin/podman save -o /img/a.tar" in (
        format_preflight(results)
    )


@pytest.mark.parametrize(
    ("provider", "runtime", "argv"),
    [
        pytest.param(
            "podman", "/usr/bin/podman", ["/usr/bin/podman", "image", "exists", "localhost/a:1"],
            id="podman",
        ),
        pytest.param(
            "docker", "docker",
            ["docker", "image", "inspect", "--format", "{{.Id}}", "localhost/a:1"], id="docker",
        ),
    ],
)  # fmt: skip
def test_build_image_exists_argv(provider: str, runtime: str, argv: list[str]) -> None:
    assert build_image_exists_argv(provider, runtime, "localhost/a:1") == argv


def test_disk_check_walks_up_past_unreadable_or_missing_directories(tmp_path: Path) -> None:
    """A rootful service's storage is not a user's to stat: the nearest parent
    that can be is on the same file system."""
    from snakemake_executor_plugin_kindslurm.kind.preflight import _disk

    fact = _disk("runtime storage", str(tmp_path / "not" / "yet" / "there"))
    assert fact.free_bytes is not None and fact.free_bytes > 0
    assert fact.path.endswith("/not/yet/there")


@pytest.mark.parametrize(
    ("euid", "answer", "expected"),
    [(0, None, False), (1000, None, True), (1000, False, False), (0, True, True)],
)
def test_is_rootless_prefers_the_runtimes_answer_to_the_uid(
    euid: int, answer: bool | None, expected: bool
) -> None:
    from snakemake_executor_plugin_kindslurm.kind.preflight import is_rootless

    assert is_rootless(euid, answer) is expected
