"""Cluster identity: names, node names, labels, the runtime label shim, the state record."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from snakemake_executor_plugin_kindslurm.kind import naming
from snakemake_executor_plugin_kindslurm.kind.cluster import (
    build_runtime_shim,
    install_runtime_shim,
)

KIND_NAME = re.compile(r"^[a-z0-9.-]+$")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({"SLURM_JOB_ID": "4242"}, "4242", id="plain-job"),
        pytest.param(
            {"SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7"},
            "4242_7",
            id="array-task",
        ),
        pytest.param({"SLURM_JOB_ID": "  "}, None, id="blank"),
        pytest.param({}, None, id="no-slurm"),
    ],
)
def test_slurm_job_id(environ: dict[str, str], expected: str | None) -> None:
    assert naming.slurm_job_id(environ) == expected


@pytest.mark.parametrize(
    ("job_id", "expected"),
    [
        pytest.param("4242", "ks-4242-abc123", id="plain"),
        pytest.param("4242_7", "ks-4242-7-abc123", id="array-underscore"),
        pytest.param(None, "ks-local-abc123", id="no-slurm"),
        pytest.param("", "ks-local-abc123", id="empty"),
        pytest.param("Het+Job/1 x", "ks-het-job-1-x-abc123", id="odd-characters"),
        pytest.param("___", "ks-local-abc123", id="nothing-left"),
    ],
)
def test_build_cluster_name(job_id: str | None, expected: str) -> None:
    assert naming.build_cluster_name(job_id, "abc123") == expected


def test_long_job_id_is_cut_from_the_head_and_stays_valid() -> None:
    job_id = "1" * 30 + "_" + "9876543210" * 5
    name = naming.build_cluster_name(job_id, "abc123")
    assert len(name) <= naming.MAX_NAME_LENGTH
    assert KIND_NAME.match(name)
    assert name.endswith("9876543210-abc123")
    assert "--" not in name
    assert naming.is_valid_cluster_name(name)


def test_bad_suffix_is_refused() -> None:
    with pytest.raises(ValueError, match="suffix"):
        naming.build_cluster_name("1", "ABC")


def test_random_suffix_alphabet_and_uniqueness() -> None:
    suffixes = {naming.random_suffix() for _ in range(2000)}
    assert len(suffixes) == 2000
    assert all(re.fullmatch(r"[a-z0-9]{6}", s) for s in suffixes)


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        pytest.param(["control-plane"], ["c-control-plane"], id="default"),
        pytest.param(
            ["control-plane", "worker", "worker"],
            ["c-control-plane", "c-worker", "c-worker2"],
            id="workers",
        ),
        pytest.param(
            ["control-plane", "control-plane", "worker"],
            ["c-control-plane", "c-control-plane2", "c-worker", "c-external-load-balancer"],
            id="ha-adds-load-balancer",
        ),
    ],
)
def test_build_node_names_matches_kind(roles: list[str], expected: list[str]) -> None:
    assert naming.build_node_names("c", roles) == expected


def test_labels_and_filter() -> None:
    labels = naming.build_labels("ks-1-abc123", "1_2", "alice", "2024-01-02T03:04:05Z", "n1")
    assert labels == {
        "io.kindslurm.cluster": "ks-1-abc123",
        "io.kindslurm.slurm-job-id": "1_2",
        "io.kindslurm.user": "alice",
        "io.kindslurm.created": "2024-01-02T03:04:05Z",
        "io.kindslurm.host": "n1",
    }
    assert naming.build_node_filter("ks-1-abc123") == "label=io.x-k8s.kind.cluster=ks-1-abc123"


# ---------------------------------------------------------------- the shim ---

HOSTILE = "$(touch PWNED) `touch PWNED2` 'quoted' \"double\" ; rm -rf / #"


def test_shim_text_quotes_every_value() -> None:
    text = build_runtime_shim("/opt/pod man/podman", {"io.kindslurm.user": HOSTILE})
    assert text.startswith("#!/bin/sh\n")
    assert "exec '/opt/pod man/podman' \"$@\"" in text
    # the hostile value only ever appears inside single quotes
    for line in text.splitlines():
        if "PWNED" in line:
            assert "--label 'io.kindslurm.user=$(touch PWNED)" in line


@pytest.fixture
def fake_runtime(tmp_path: Path) -> Path:
    """A 'runtime' that prints one argument per line."""
    path = tmp_path / "real runtime"
    path.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    path.chmod(0o755)
    return path


def _run_shim(shim: Path, *args: str, cwd: Path) -> list[str]:
    out = subprocess.run(
        [str(shim), *args], capture_output=True, text=True, check=True, cwd=cwd
    ).stdout
    return out.splitlines()


def test_shim_adds_labels_to_run_and_volume_create_only(tmp_path: Path, fake_runtime: Path) -> None:
    labels = {"io.kindslurm.cluster": "ks-1-abc123", "io.kindslurm.user": HOSTILE}
    shim = install_runtime_shim(tmp_path / "bin", "podman", str(fake_runtime), labels)
    assert shim.name == "podman"
    assert stat.S_IMODE(shim.stat().st_mode) == 0o700
    assert stat.S_IMODE(shim.parent.stat().st_mode) == 0o700

    run = _run_shim(shim, "run", "--name", "n1", "--label", "a=b", "img", cwd=tmp_path)
    assert run == [
        "run",
        "--label", "io.kindslurm.cluster=ks-1-abc123",
        "--label", f"io.kindslurm.user={HOSTILE}",
        "--name", "n1", "--label", "a=b", "img",
    ]  # fmt: skip
    volume = _run_shim(shim, "volume", "create", "--label", "n1=true", cwd=tmp_path)
    assert volume == [
        "volume", "create",
        "--label", "io.kindslurm.cluster=ks-1-abc123",
        "--label", f"io.kindslurm.user={HOSTILE}",
        "--label", "n1=true",
    ]  # fmt: skip
    assert _run_shim(shim, "volume", "ls", "-q", cwd=tmp_path) == ["volume", "ls", "-q"]
    assert _run_shim(shim, "ps", "-a", "--format", "{{.Names}}", cwd=tmp_path) == [
        "ps", "-a", "--format", "{{.Names}}",
    ]  # fmt: skip
    assert _run_shim(shim, "--version", cwd=tmp_path) == ["--version"]
    assert not list(tmp_path.glob("PWNED*")), "a label value was executed"


def test_shim_for_docker_is_named_docker(tmp_path: Path, fake_runtime: Path) -> None:
    shim = install_runtime_shim(tmp_path / "bin", "docker", str(fake_runtime), {"k": "v"})
    assert shim.name == "docker"


# ---------------------------------------------------------- state record ---


def _record(tmp_path: Path) -> naming.StateRecord:
    return naming.StateRecord(
        name="ks-1-abc123",
        slurm_job_id="1",
        user="alice",
        uid=os.getuid(),
        host="n1",
        created="2024-01-02T03:04:05Z",
        kubeconfig=str(tmp_path / "kubeconfig"),
        tempdir=str(tmp_path),
        runner_pid=123,
        provider="podman",
        runtime="podman",
    )


def test_state_dir_uses_xdg_runtime_dir_or_tmp() -> None:
    assert naming.state_dir({"XDG_RUNTIME_DIR": "/run/user/7"}, 7) == Path(
        "/run/user/7/kindslurm-7/clusters"
    )
    assert naming.state_dir({}, 7) == Path("/tmp/kindslurm-7/clusters")
    assert naming.state_record_path({}, 7, "ks-x") == Path("/tmp/kindslurm-7/clusters/ks-x.json")


def test_state_record_round_trip_and_modes(tmp_path: Path) -> None:
    record = _record(tmp_path)
    path = naming.state_record_path({"XDG_RUNTIME_DIR": str(tmp_path)}, record.uid, record.name)
    old = os.umask(0)
    try:
        naming.write_state_record(path, record)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert naming.StateRecord.from_json(path.read_text()) == record
    assert naming.read_state_records(path.parent) == [record]
    (path.parent / "broken.json").write_text("{not json")
    assert naming.read_state_records(path.parent) == [record]


def test_state_record_without_runtime_service_reads_as_local(tmp_path: Path) -> None:
    """Records written before runtime_service existed mean the local runtime."""
    data = json.loads(_record(tmp_path).to_json())
    del data["runtime_service"]
    assert naming.StateRecord.from_json(json.dumps(data)).runtime_service == ""
    via = naming.StateRecord(**{**vars(_record(tmp_path)), "runtime_service": "unix:///s"})
    assert naming.StateRecord.from_json(via.to_json()).runtime_service == "unix:///s"


def test_private_dir_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "kindslurm-7").symlink_to(target)
    with pytest.raises(PermissionError, match="not a directory owned"):
        naming.ensure_private_dir(tmp_path / "kindslurm-7" / "clusters", os.getuid())


def test_private_dir_refuses_a_foreign_owner(tmp_path: Path) -> None:
    with pytest.raises(PermissionError, match="owned by uid"):
        naming.ensure_private_dir(tmp_path / "a" / "b", os.getuid() + 1)
