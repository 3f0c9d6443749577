"""Several users on one node, at the same time: two real Linux users (kstest,
kstest2) each run `snakemake --executor kindslurm` as themselves; their jobs
create, use and delete Kind clusters concurrently on the one Slurm node.

Rootless kind needs cgroup v2, which this test bed's host does not have, so
the users reach a rootful Podman service through a group-owned socket
(`CONTAINER_HOST`, testbed/kind.sh start-podman-service), the way users of a
docker group do. Everything else is each user's own: the kind process, the
kubeconfig, the state records, the temp dirs and the Slurm job.

The two jobs meet at a barrier inside their workloads, so both clusters are
proven to exist at once; from there each job records what it can see of the
other's (labels, kubeconfig) for the assertions below.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from snakemake_executor_plugin_kindslurm.cli import TESTBED

from ..conftest import missing
from .leakcheck import assert_nothing_left, kind_node_containers, leftovers
from .workflows import job_active, snakemake_argv, wait_until, write_workflow

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("slurm")]

USERS = ("kstest", "kstest2")
SERVICE_GROUP = "kindslurm-podman"


def _k8s_workflow(script: str) -> str:
    """A Snakefile whose one job (rule k8s, a Kind cluster) runs script and
    writes result.txt. Braces in script are Snakemake's (double them)."""
    body = textwrap.indent(textwrap.dedent(script).strip("\n"), " " * 8)
    return (
        'rule all:\n    input: "result.txt"\n\n'
        'rule k8s:\n    output: "result.txt"\n    resources: mem_mb=400\n'
        f"    threads: 1\n    shell:\n        '''\n{body}\n        '''\n"
    )


# Placeholders @BARRIER@, @OTHER@ and @KINDSLURM@ are filled in by the test;
# braces are doubled for Snakemake's own formatting of `shell:`.
SNAKEFILE = _k8s_workflow(
    """
me=$(id -un)
node="$K8S_CLUSTER_NAME-control-plane"
# 1. announce this cluster and kubeconfig to the other user, then wait
#    (bounded) for theirs: from here on both clusters exist at once.
echo "$K8S_CLUSTER_NAME $KUBECONFIG" > @BARRIER@/$me.tmp
mv @BARRIER@/$me.tmp @BARRIER@/$me
i=0
until [ -e @BARRIER@/@OTHER@ ]; do
    i=$((i + 1)); [ $i -lt 600 ] || {{ echo "no sign of @OTHER@" >&2; exit 3; }}
    sleep 0.2
done
read -r other_name other_kubeconfig < @BARRIER@/@OTHER@
label='{{{{index .Config.Labels "io.kindslurm.user"}}}}'
# 2. what this user sees
{{
  echo "user $me"
  echo "container_host $CONTAINER_HOST"
  echo "cluster $K8S_CLUSTER_NAME"
  echo "kubeconfig_dir $(stat -c '%U %a' "$(dirname "$KUBECONFIG")")"
  echo "context $(kubectl config current-context)"
  echo "server $(kubectl --context "$K8S_CLUSTER_NAME" config view --minify -o jsonpath='{{.clusters[0].cluster.server}}')"
  echo "own_label $(podman inspect --format "$label" "$node")"
  echo "other_cluster $other_name"
  echo "other_label $(podman inspect --format "$label" "$other_name-control-plane")"
  if cat "$other_kubeconfig" > /dev/null 2>&1; then
      echo "other_kubeconfig readable"
  else
      echo "other_kubeconfig denied"
  fi
  echo "listed $(@KINDSLURM@ list --json | tr -d ' \\n')"
}} > facts.txt
podman exec "$node" sh -c 'echo "written in $(hostname)" > /app/from-node.txt'
# 3. hold on until the other user has looked at this cluster too
touch @BARRIER@/$me.done
i=0
until [ -e @BARRIER@/@OTHER@.done ]; do
    i=$((i + 1)); [ $i -lt 600 ] || {{ echo "@OTHER@ never finished looking" >&2; exit 4; }}
    sleep 0.2
done
cat facts.txt from-node.txt > {output}
"""
)


def _service_url() -> str:
    proc = subprocess.run(
        ["bash", str(TESTBED / "kind.sh"), "service-url"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return proc.stdout.strip()


def _prerequisites() -> str:
    """The service URL, after checking each user can use it and the test venv."""
    url = _service_url()
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            missing(f"Linux user {user} (kindslurm ci-setup --user {user})")
        probe = subprocess.run(
            ["runuser", "-u", user, "--", "env", f"CONTAINER_HOST={url}", "podman", "info",
             "--format", "{{.Host.Security.Rootless}}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if probe.returncode != 0 or probe.stdout.strip() != "false":
            missing(
                f"a rootful Podman service at {url} usable by {user} (group {SERVICE_GROUP}; "
                f"kindslurm ci-setup --podman-service): {probe.stderr.strip() or probe.stdout}"
            )
        probe = subprocess.run(
            ["runuser", "-u", user, "--", sys.executable, "-c",
             "import snakemake_executor_plugin_kindslurm, snakemake"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if probe.returncode != 0:
            missing(f"a Python environment readable by {user} ({sys.executable})")
    return url


def _records_of(uid: int) -> list[str]:
    """The state records the runner of uid left (XDG_RUNTIME_DIR is unset for them)."""
    return sorted(str(p) for p in Path(f"/tmp/kindslurm-{uid}/clusters").glob("ks-*.json"))


@pytest.fixture
def shared_dir(kind_ready: str) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="kindslurm-multiuser-", dir="/tmp"))
    base.chmod(0o755)
    (base / "barrier").mkdir()
    (base / "barrier").chmod(0o1777)
    before = leftovers()
    try:
        yield base
        assert wait_until(lambda: not (leftovers() - before), 60), (leftovers() - before).describe()
        assert_nothing_left(before=before)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _start_workflow(
    user: str,
    workdir: Path,
    snakefile: str,
    url: str,
    image: str,
    *extra: str,
    via_setting: bool = False,
) -> subprocess.Popen[str]:
    """`snakemake --executor kindslurm` as user, in workdir (made theirs), with
    the shared service as CONTAINER_HOST (or, via_setting, as
    --kindslurm-runtime-host with CONTAINER_HOST unset) and nothing of root's
    environment that would point elsewhere."""
    entry = pwd.getpwnam(user)
    write_workflow(workdir, snakefile)
    for path in [workdir, *workdir.rglob("*")]:
        os.chown(path, entry.pw_uid, entry.pw_gid)
    env = [f"HOME={entry.pw_dir}", f"USER={user}"]
    if via_setting:
        extra = (*extra, "--kindslurm-runtime-host", url)
    else:
        env.append(f"CONTAINER_HOST={url}")
    return subprocess.Popen(
        ["runuser", "-u", user, "--", "env", "-u", "XDG_RUNTIME_DIR", "-u", "TMPDIR",
         "-u", "CONTAINER_HOST", *env,
         *snakemake_argv(workdir, "--kindslurm-node-image", image, *extra, jobs=1)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=workdir,
    )  # fmt: skip


def _fill(snakefile: str, **values: str | Path) -> str:
    for key, value in values.items():
        snakefile = snakefile.replace(f"@{key.upper()}@", str(value))
    return snakefile


def test_two_users_have_concurrent_private_clusters(shared_dir: Path, kind_ready: str) -> None:
    url = _prerequisites()
    kindslurm = Path(sys.executable).parent / "kindslurm"
    barrier = shared_dir / "barrier"
    records_before = {u: _records_of(pwd.getpwnam(u).pw_uid) for u in USERS}
    procs: dict[str, subprocess.Popen[str]] = {}
    workdirs: dict[str, Path] = {}
    for user, other in (USERS, USERS[::-1]):
        workdirs[user] = shared_dir / user
        snakefile = _fill(SNAKEFILE, barrier=barrier, other=other, kindslurm=kindslurm)
        # kstest exports CONTAINER_HOST; kstest2 has the setting (as a site profile would)
        procs[user] = _start_workflow(
            user, workdirs[user], snakefile, url, kind_ready, via_setting=user == USERS[1]
        )
    outputs = {user: proc.communicate(timeout=600)[0] for user, proc in procs.items()}
    for user, proc in procs.items():
        assert proc.returncode == 0, f"{user}'s workflow failed:\n{outputs[user]}"

    facts = {}
    for user in USERS:
        lines = (workdirs[user] / "result.txt").read_text().splitlines()
        facts[user] = dict(line.split(" ", 1) for line in lines if " " in line)
        assert lines[-1].startswith("written in "), lines  # through /app, from the node
    a, b = (facts[u] for u in USERS)
    # names: distinct, and each saw the other's cluster alive at the same time
    assert a["cluster"] != b["cluster"]
    assert a["other_cluster"] == b["cluster"] and b["other_cluster"] == a["cluster"]
    for user in USERS:
        mine = facts[user]
        assert mine["user"] == user
        assert mine["container_host"] == url  # from the environment or from the setting
        # labels: every node says whose it is, seen by its owner and by the other
        assert mine["own_label"] == user
        other = USERS[1 - USERS.index(user)]
        assert facts[other]["other_label"] == user
        # kubeconfigs: private to their owner, current context named like the cluster
        assert mine["kubeconfig_dir"] == f"{user} 700"
        assert mine["context"] == mine["cluster"]
        assert mine["other_kubeconfig"] == "denied"
        # `kindslurm list` shows a user their own cluster only
        listed = json.loads(mine["listed"])
        assert [c["name"] for c in listed] == [mine["cluster"]], listed
        assert listed[0]["user"] == user
    # ports: each API server got its own host port
    assert a["server"] != b["server"] and a["server"].startswith("https://127.0.0.1:")
    # the Slurm jobs ran as the users themselves
    for user in USERS:
        assert kind_node_containers(facts[user]["cluster"]) == []
        uid = pwd.getpwnam(user).pw_uid
        assert _records_of(uid) == records_before[user]


# The victim's job announces its cluster and then only waits to be cancelled;
# the survivor's job waits until the victim's node is gone and then uses its own
# cluster: cancelling one user's job must remove that cluster and no other.
VICTIM = _k8s_workflow(
    """
echo "$K8S_CLUSTER_NAME" > @BARRIER@/$(id -un).tmp
mv @BARRIER@/$(id -un).tmp @BARRIER@/$(id -un)
sleep 600
touch {output}
"""
)

SURVIVOR = _k8s_workflow(
    """
echo "$K8S_CLUSTER_NAME" > @BARRIER@/$(id -un).tmp
mv @BARRIER@/$(id -un).tmp @BARRIER@/$(id -un)
i=0
until [ -e @BARRIER@/@OTHER@ ]; do
    i=$((i + 1)); [ $i -lt 600 ] || {{ echo "no sign of @OTHER@" >&2; exit 3; }}
    sleep 0.2
done
read -r other_name < @BARRIER@/@OTHER@
i=0
while podman container exists "$other_name-control-plane"; do
    i=$((i + 1)); [ $i -lt 900 ] || {{ echo "$other_name is still there" >&2; exit 4; }}
    sleep 0.2
done
podman exec "$K8S_CLUSTER_NAME-control-plane" sh -c 'echo still-here > /app/after.txt'
echo "other_gone $other_name" > {output}
echo "mine $K8S_CLUSTER_NAME $(kubectl config current-context)" >> {output}
cat after.txt >> {output}
"""
)


def test_cancelling_one_users_job_leaves_the_other_users_cluster_alone(
    shared_dir: Path, kind_ready: str
) -> None:
    url = _prerequisites()
    victim, survivor = USERS
    barrier = shared_dir / "barrier"
    records_before = {u: _records_of(pwd.getpwnam(u).pw_uid) for u in USERS}
    procs = {
        victim: _start_workflow(
            victim, shared_dir / victim, _fill(VICTIM, barrier=barrier), url, kind_ready
        ),
        survivor: _start_workflow(
            survivor, shared_dir / survivor,
            _fill(SURVIVOR, barrier=barrier, other=victim), url, kind_ready,
        ),
    }  # fmt: skip
    try:
        both = wait_until(lambda: all((barrier / u).exists() for u in USERS), 300)
        assert both, "the two jobs never ran at the same time"
        victim_cluster = (barrier / victim).read_text().strip()
        survivor_cluster = (barrier / survivor).read_text().strip()
        # Root's own podman sees the service's containers: the leak checks
        # (as root) are not blind to the users' clusters.
        for cluster in (victim_cluster, survivor_cluster):
            assert kind_node_containers(cluster) == [f"{cluster}-control-plane"]
        queue = subprocess.run(
            ["squeue", "--noheader", f"--user={victim}", "--format=%i"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.split()  # fmt: skip
        assert len(queue) == 1, queue
        # the user cancels their own job, as users do
        subprocess.run(["runuser", "-u", victim, "--", "scancel", queue[0]], check=True, timeout=30)
        outputs = {user: proc.communicate(timeout=600)[0] for user, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    assert procs[victim].returncode != 0, outputs[victim]
    assert "CANCELLED" in outputs[victim], outputs[victim]
    assert procs[survivor].returncode == 0, outputs[survivor]
    result = (shared_dir / survivor / "result.txt").read_text().splitlines()
    assert result == [
        f"other_gone {victim_cluster}",
        f"mine {survivor_cluster} {survivor_cluster}",
        "still-here",
    ]
    for user, cluster in ((victim, victim_cluster), (survivor, survivor_cluster)):
        assert kind_node_containers(cluster) == []
        assert _records_of(pwd.getpwnam(user).pw_uid) == records_before[user]


HOLD = """#!/bin/sh
printf '%s\\n' "$K8S_CLUSTER_NAME" > cluster-name.tmp
mv cluster-name.tmp cluster-name
exec sleep 300
"""


def _as_user(user: str, url: str | None, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    entry = pwd.getpwnam(user)
    unset = ["-u", "XDG_RUNTIME_DIR", "-u", "TMPDIR"] + ([] if url else ["-u", "CONTAINER_HOST"])
    env = [f"HOME={entry.pw_dir}", f"USER={user}"] + ([f"CONTAINER_HOST={url}"] if url else [])
    return subprocess.run(
        ["runuser", "-u", user, "--", "env", *unset, *env, *argv],
        capture_output=True, text=True, timeout=180, cwd=cwd,
    )  # fmt: skip


def test_gc_finds_a_users_orphan_only_through_the_service_it_was_made_in(
    shared_dir: Path, kind_ready: str
) -> None:
    """kill -9 a user's runner: its Slurm job ends, its node stays (rootful
    containers leave the job's cgroup). `kindslurm gc` as that user without
    CONTAINER_HOST cannot see the node and must not drop the record; with it,
    gc deletes node, record and temp dir. The other user cannot touch it."""
    url = _prerequisites()
    owner, other = USERS
    entry = pwd.getpwnam(owner)
    kindslurm = str(Path(sys.executable).parent / "kindslurm")
    wd = shared_dir / owner
    wd.mkdir()
    (wd / "hold.sh").write_text(HOLD)
    (wd / "hold.sh").chmod(0o755)
    for path in (wd, wd / "hold.sh"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    command = f"exec {kindslurm} run --node-image {kind_ready} ./hold.sh"
    submitted = _as_user(
        owner, url, "sbatch", "--parsable", f"--chdir={wd}", "--output=hold.log",
        f"--wrap={command}", cwd=wd,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    try:
        assert wait_until((wd / "cluster-name").exists, 120), (wd / "hold.log").read_text()
        name = (wd / "cluster-name").read_text().strip()
        (record_path,) = [p for p in _records_of(entry.pw_uid) if p.endswith(f"/{name}.json")]
        record = json.loads(Path(record_path).read_text())
        assert record["runtime_service"] == url and record["user"] == owner
        os.kill(record["runner_pid"], signal.SIGKILL)
        assert wait_until(lambda: not job_active(job), 90), f"job {job} did not end"
        assert kind_node_containers(name) == [f"{name}-control-plane"]

        # The other user sees nothing of it and may not delete it.
        theirs = _as_user(other, url, kindslurm, "gc", "--yes", name, cwd=shared_dir)
        assert theirs.returncode == 0, theirs.stderr
        assert f"{name}: not among {other}'s" in theirs.stderr
        # Without the service: the node is invisible, so gc keeps the record.
        blind = _as_user(owner, None, kindslurm, "gc", "--yes", cwd=wd)
        assert blind.returncode == 0, blind.stderr
        assert f"keeping {name}: it was made through CONTAINER_HOST={url}" in blind.stderr
        assert Path(record_path).exists() and Path(record["tempdir"]).is_dir()
        assert kind_node_containers(name) == [f"{name}-control-plane"]
        # Through the service: an orphan, deleted with its record and temp dir.
        # the service by option this time (kindslurm --runtime-host), not by environment
        seeing = _as_user(owner, None, kindslurm, "gc", "--yes", "--runtime-host", url, cwd=wd)
        assert seeing.returncode == 0, seeing.stderr
        assert f"deleted {name} (job {job} ended: " in seeing.stdout, seeing.stdout
        assert kind_node_containers(name) == []
        assert not Path(record_path).exists() and not Path(record["tempdir"]).exists()
    finally:
        subprocess.run(["scancel", job], capture_output=True, timeout=60)
        # A failed assertion must not leave the orphan to the leak check alone.
        if (wd / "cluster-name").exists():
            _as_user(owner, url, kindslurm, "gc", "--yes", cwd=wd)


LOCKED = _k8s_workflow("""echo "$K8S_CLUSTER_NAME" > {output}\n""")
STAMP = re.compile(r"^\[kindslurm (\S+)\] create: (.*)$", re.M)


def _create_interval(log: str) -> tuple[datetime, datetime]:
    """When `kind create` started and when the cluster was ready, from a job log."""
    started = ready = None
    for stamp, message in STAMP.findall(log):
        if message.startswith("kind create cluster "):
            started = datetime.fromisoformat(stamp)
        elif " ready; KUBECONFIG=" in message:
            ready = datetime.fromisoformat(stamp)
    assert started is not None and ready is not None, log
    return started, ready


def test_the_create_lock_is_shared_by_all_users_of_a_node(
    shared_dir: Path, kind_ready: str
) -> None:
    """--kindslurm-create-lock serialises `kind create` per node, whoever
    creates: while root holds the lock neither user's job creates anything;
    after, both report waiting and their creates do not overlap."""
    from snakemake_executor_plugin_kindslurm.kind import lock

    url = _prerequisites()
    procs: dict[str, subprocess.Popen[str]] = {}
    extra = ("--kindslurm-create-lock", "--kindslurm-keep-successful-logs")
    with lock.create_lock(timeout=60):
        for user in USERS:
            procs[user] = _start_workflow(user, shared_dir / user, LOCKED, url, kind_ready, *extra)
        try:
            running = wait_until(lambda: len(_running_jobs()) == 2, 120)
            assert running, f"both jobs should run: {_running_jobs()}"
            time.sleep(3)  # time enough to create a cluster, had the lock not held them
            assert kind_node_containers() == [], "a cluster was created under root's lock"
        except BaseException:
            for proc in procs.values():
                proc.kill()
            subprocess.run(["scancel", f"--user={','.join(USERS)}"], timeout=60)
            raise
    outputs = {user: proc.communicate(timeout=600)[0] for user, proc in procs.items()}
    intervals = []
    for user, proc in procs.items():
        assert proc.returncode == 0, f"{user}'s workflow failed:\n{outputs[user]}"
        (log_file,) = (shared_dir / user / ".snakemake" / "kindslurm_logs").rglob("*.log")
        log = log_file.read_text()
        assert f"waited for the create lock {lock.DEFAULT_LOCK_PATH}" in log, log
        intervals.append(_create_interval(log))
    first, second = sorted(intervals)
    assert second[0] >= first[1], f"kind create overlapped: {first} and {second}"


def _running_jobs() -> list[str]:
    proc = subprocess.run(
        ["squeue", "--noheader", "--states=RUNNING", f"--user={','.join(USERS)}",
         "--format=%i"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return proc.stdout.split()
