"""The `kindslurm` command against the real single-node Slurm, real kind and root
Podman (stand-in node image: no real API server, but kind's create/delete,
kubeconfig and /app mount are real).

Every test ends by checking that nothing of its clusters is left: node
containers, volumes, the runner's temp dirs, state records, published
kubeconfigs. A fixture also deletes whatever a failing test leaves, so a red
test does not leave clusters or jobs behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snakemake_executor_plugin_kindslurm.kind.preflight import run_preflight
from snakemake_executor_plugin_kindslurm.spec import RunnerSpec

from ..conftest import missing
from .leakcheck import assert_nothing_left, kind_node_containers, state_records
from .workflows import job_active

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("slurm")]

KINDSLURM = str(Path(sys.executable).parent / "kindslurm")
NAME = re.compile(r"ks-[a-z0-9.-]+")


@pytest.fixture(scope="module")
def image(kind_ready: str) -> str:
    if not os.access(KINDSLURM, os.X_OK):
        pytest.fail(f"{KINDSLURM} is missing: install the package (pip install -e .)")
    return kind_ready


@dataclass
class Bed:
    """One test's private world: working dir, TMPDIR, HOME; and what it created."""

    root: Path
    image: str
    clusters: set[str] = field(default_factory=set)
    jobs: set[str] = field(default_factory=set)
    pids: set[int] = field(default_factory=set)

    @property
    def work(self) -> Path:
        return self.root / "work dir"  # a space, to keep quoting honest

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
        env.update(TMPDIR=str(self.tmp), HOME=str(self.home), SHELL="/bin/sh", **extra)
        return env

    def kindslurm(
        self, *args: str, timeout: float = 180, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KINDSLURM, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.work,
            env=env or self.env(),
        )

    def image_options(self) -> list[str]:
        return ["--node-image", self.image]

    def script(self, name: str, text: str, executable: bool = True) -> Path:
        path = self.work / name
        path.write_text(text)
        path.chmod(0o755 if executable else 0o644)
        return path

    def sbatch(self, *args: str) -> str:
        proc = subprocess.run(
            ["sbatch", "--parsable", f"--chdir={self.work}", *args],
            capture_output=True, text=True, timeout=60, env=self.env(), check=True,
        )  # fmt: skip
        job = proc.stdout.strip().split(";")[0]
        self.jobs.add(job)
        return job

    def nothing_left(self, name: str) -> None:
        assert_nothing_left(name, self.tmp)
        leftovers = sorted(str(p) for p in self.tmp.iterdir())
        assert not leftovers, f"left in TMPDIR: {leftovers}"
        kube = self.home / ".kube"
        published = sorted(str(p) for p in kube.iterdir()) if kube.exists() else []
        assert not published, f"kubeconfigs left: {published}"
        up = self.home / ".kindslurm" / "up"
        markers = sorted(str(p) for p in up.glob("*.ready.json")) if up.exists() else []
        assert not markers, f"ready markers left: {markers}"


@pytest.fixture
def bed(image: str, tmp_path: Path) -> Iterator[Bed]:
    bed = Bed(tmp_path, image)
    for path in (bed.work, bed.tmp, bed.home):
        path.mkdir()
    yield bed
    # A failed test must not leave jobs, processes or clusters behind.
    for job in bed.jobs:
        subprocess.run(["scancel", job], capture_output=True, timeout=60)
    for pid in bed.pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    wait_until(lambda: not any(job_active(j) for j in bed.jobs), 90)
    for name in bed.clusters:
        if kind_node_containers(name):
            subprocess.run(
                ["kind", "delete", "cluster", "--name", name,
                 "--kubeconfig", str(tmp_path / "cleanup-kubeconfig")],
                capture_output=True, timeout=120,
                env={**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"},
            )  # fmt: skip
        for record in state_records(name):
            Path(record).unlink(missing_ok=True)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def sacct(job: str) -> tuple[str, str]:
    """(state, exit code) once accounting has the job's end."""
    for _ in range(40):
        proc = subprocess.run(
            ["sacct", "-X", "--noheader", "--parsable2", f"--jobs={job}",
             "--format=State,ExitCode"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        line = proc.stdout.strip().splitlines()[-1:] or [""]
        state, _, code = line[0].partition("|")
        if state and not state.startswith(("RUNNING", "PENDING", "COMPLETING")):
            return state, code
        time.sleep(0.5)
    raise AssertionError(f"job {job} never reached a final state in sacct")


def read_when_there(path: Path, timeout: float = 60) -> str:
    assert wait_until(path.exists, timeout), f"{path} never appeared"
    wait_until(lambda: path.read_text().endswith("\n"), 5)
    return path.read_text().strip()


PROBE = r"""#!/bin/sh
printf '%s\n' "$K8S_CLUSTER_NAME" > cluster-name
printf '%s|' "$@" > args
printf '%s\n' "$KUBECONFIG" > kubeconfig-path
exit "${CODE:-0}"
"""


# ------------------------------------------------------------------ run ---


@pytest.mark.parametrize(
    ("code", "executable"),
    [pytest.param(0, True, id="exit-0-shebang"), pytest.param(1, True, id="exit-1"),
     pytest.param(42, False, id="exit-42-via-sh")],
)  # fmt: skip
def test_run_passes_the_exit_code_through_and_deletes_the_cluster(
    bed: Bed, code: int, executable: bool
) -> None:
    script = bed.script("probe.sh", PROBE, executable)
    done = bed.kindslurm("run", *bed.image_options(), script.name, "a b", "c",
                         env=bed.env(CODE=str(code)))  # fmt: skip
    name = read_when_there(bed.work / "cluster-name")
    bed.clusters.add(name)
    assert done.returncode == code, done.stderr
    assert (bed.work / "args").read_text() == "a b|c|"
    assert f"cluster {name} deleted" in done.stderr
    assert "warning" not in done.stderr
    bed.nothing_left(name)


def test_run_under_srun(bed: Bed) -> None:
    bed.script("probe.sh", PROBE)
    done = subprocess.run(
        ["srun", "--ntasks=1", KINDSLURM, "run", *bed.image_options(), "./probe.sh"],
        capture_output=True, text=True, timeout=180, cwd=bed.work, env=bed.env(CODE="42"),
    )  # fmt: skip
    name = read_when_there(bed.work / "cluster-name")
    bed.clusters.add(name)
    assert done.returncode == 42, done.stderr
    assert "warning" not in done.stderr
    bed.nothing_left(name)


LONG = """#!/bin/sh
printf '%s\\n' "$K8S_CLUSTER_NAME" > cluster-name
sleep 300
"""


def test_run_as_the_batch_shell_cleans_up_on_scancel(bed: Bed) -> None:
    bed.script("long.sh", LONG)
    command = f"exec {KINDSLURM} run --node-image {bed.image} ./long.sh"
    job = bed.sbatch("--signal=B:USR1@60", "--output=job.log", f"--wrap={command}")
    name = read_when_there(bed.work / "cluster-name", 90)
    bed.clusters.add(name)
    assert kind_node_containers(name)
    refused = bed.kindslurm("down", job)  # not an `up` job: `down` does not cancel it
    assert refused.returncode == 2 and "runs no kindslurm cluster" in refused.stderr
    assert job_active(job)
    subprocess.run(["scancel", job], check=True, timeout=60)
    assert wait_until(lambda: not job_active(job), 60)
    assert sacct(job)[0].startswith("CANCELLED")
    log = (bed.work / "job.log").read_text()
    assert "received SIGTERM" in log and f"cluster {name} deleted" in log, log
    bed.nothing_left(name)


def test_run_not_execd_by_the_batch_script_warns(bed: Bed) -> None:
    bed.script("probe.sh", PROBE)
    job = bed.sbatch("--output=job.log", f"--wrap={KINDSLURM} run --node-image {bed.image} "
                     "./probe.sh")  # fmt: skip
    assert wait_until(lambda: not job_active(job), 90)
    name = read_when_there(bed.work / "cluster-name", 5)
    bed.clusters.add(name)
    log = (bed.work / "job.log").read_text()
    assert "not the batch shell itself" in log and "exec kindslurm run" in log, log
    bed.nothing_left(name)


# ------------------------------------------------------------------- up ---


def up(bed: Bed, *args: str) -> dict[str, object]:
    done = bed.kindslurm("up", "--json", *bed.image_options(), *args)
    match = re.search(r"submitted Slurm job (\d+)", done.stderr)
    if match:
        bed.jobs.add(match.group(1))
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert isinstance(info, dict)
    bed.clusters.add(str(info["cluster"]))
    return info


def listed(bed: Bed, *args: str) -> dict[str, dict[str, object]]:
    done = bed.kindslurm("list", "--json", *args)
    assert done.returncode == 0, done.stderr
    return {str(entry["name"]): entry for entry in json.loads(done.stdout)}


def test_up_list_down(bed: Bed) -> None:
    info = up(bed, "--time", "10", "--name-file", "cluster.txt")
    name, job = str(info["cluster"]), str(info["job_id"])
    kubeconfig = Path(str(info["kubeconfig"]))
    assert kubeconfig == bed.home / ".kube" / f"kindslurm-{job}.yaml"
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    assert (bed.work / "cluster.txt").read_text() == f"{name}\n"
    # The kubeconfig talks to 127.0.0.1:<the port podman publishes>, context named like the
    # cluster: what an ssh tunnel to the node (or the node itself) makes reachable.
    view = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "config", "view", "--minify",
         "-o", "jsonpath={.current-context} {.clusters[0].cluster.server}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    published = subprocess.run(
        ["podman", "port", f"{name}-control-plane", "6443/tcp"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    assert view.stdout == f"{name} https://{published}"
    assert published == f"127.0.0.1:{info['api_port']}"
    port, node = info["api_port"], os.uname().nodename
    assert info["ssh_forward"] == f"ssh -N -L {port}:127.0.0.1:{port} {node}"
    assert 500 < int(str(info["time_left_seconds"])) <= 600

    entry = listed(bed)[name]
    assert (entry["slurm_job_id"], entry["job_state"], entry["alive"]) == (job, "RUNNING", True)
    table = bed.kindslurm("list").stdout
    row = next(line for line in table.splitlines() if line.startswith(name))
    assert row.split()[1:3] == [job, "RUNNING"] and " yes " in row

    done = bed.kindslurm("down", name)
    assert done.returncode == 0, done.stderr
    assert f"Deleted cluster {name} (Slurm job {job})." in done.stdout
    assert not kind_node_containers(name)
    assert sacct(job)[0].startswith("CANCELLED")
    assert not (bed.work / "cluster.txt").exists()
    assert name not in listed(bed)
    bed.nothing_left(name)


def test_up_attach_opens_a_shell_in_the_job(bed: Bed) -> None:
    if shutil.which("script") is None:
        missing("script(1) from util-linux, to give `up` a terminal")
    command = f"{KINDSLURM} up --attach --node-image {bed.image}"
    proc = subprocess.Popen(
        ["script", "-qec", command, "/dev/null"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        cwd=bed.work, env=bed.env(), text=True,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    bed.pids.add(proc.pid)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        match = re.search(r"submitted Slurm job (\d+)", line)
        if match:
            bed.jobs.add(match.group(1))
        if "attaching: srun" in line:
            break
    proc.stdin.write('echo "in-job: $SLURM_JOB_ID $K8S_CLUSTER_NAME $(kubectl config '
                     'current-context)"; exit\n')  # fmt: skip
    proc.stdin.flush()
    output = "".join(seen) + proc.communicate(timeout=60)[0]
    (job,) = bed.jobs
    match = re.search(rf"in-job: {job} (ks-\S+) (ks-\S+)", output)
    assert match, output
    assert match.group(1) == match.group(2)
    bed.clusters.add(match.group(1))
    assert job_active(job), "leaving the shell must not end the cluster"

    done = bed.kindslurm("down")  # the user's only `up` job
    assert done.returncode == 0, done.stderr
    bed.nothing_left(match.group(1))


@pytest.mark.slow
def test_up_is_deleted_at_the_time_limit_warning(bed: Bed) -> None:
    # Three minutes and a 30 s grace: Slurm sends the warning 30-90 s before the
    # limit (it may come up to 60 s early), never before half-way, so the cluster
    # is ready well before it; then the job runs into its limit: TIMEOUT.
    info = up(bed, "--time=3", "--cleanup-grace-seconds=30")
    name, job = str(info["cluster"]), str(info["job_id"])
    assert wait_until(lambda: not kind_node_containers(name), 200, interval=1)
    assert job_active(job), "the cluster should be gone before the job's hard kill"
    assert wait_until(lambda: not job_active(job), 120, interval=1)
    assert sacct(job)[0] == "TIMEOUT"
    log = Path(str(info["log"])).read_text()
    assert "received SIGUSR1" in log and f"cluster {name} deleted" in log, log
    # Not during create: the warning came after the cluster was ready.
    assert log.index("received SIGUSR1") > log.index(f"cluster {name} ready;"), log
    bed.nothing_left(name)


def test_up_without_time_follows_the_partitions_default(bed: Bed) -> None:
    # `short` gives jobs without --time 2 minutes: no warning (it could come as the
    # job starts); the default partition has no limit: the full 60 s grace.
    for options, lead in ((["--", "--partition=short"], None), ([], 60)):
        info = up(bed, *options)
        assert info["time_limit_warning_seconds"] == lead
        if lead is None:
            assert 0 < int(str(info["time_left_seconds"])) <= 120
        else:
            # No limit: squeue says UNLIMITED, or 365 days when the backfill
            # scheduler started the job (Slurm 22.05 gives it a year).
            left = info["time_left_seconds"]
            assert info["time_left_known"] is True
            assert left is None or int(str(left)) > 300 * 86400, left
        done = bed.kindslurm("down", str(info["job_id"]))
        assert done.returncode == 0, done.stderr
        bed.nothing_left(str(info["cluster"]))


# ------------------------------------------------------------- list / gc ---

RELABEL = """#!/bin/sh
# Test double for another user's cluster in root's storage: the real podman,
# but the runner's user label says kstest.
for arg do
    shift
    case $arg in io.kindslurm.user=*) arg=io.kindslurm.user=kstest ;; esac
    set -- "$@" "$arg"
done
exec {podman} "$@"
"""
HOLD = """#!/bin/sh
tag=${TAG:-$SLURM_JOB_ID}
printf '%s\\n' "$$" > "pid-$tag"
printf '%s\\n' "$K8S_CLUSTER_NAME" > "cluster-$tag"
exec sleep 300
"""


def test_gc_deletes_only_this_users_orphans(bed: Bed) -> None:
    bed.script("hold.sh", HOLD)
    command = f"exec {KINDSLURM} run --node-image {bed.image} ./hold.sh"
    doomed = bed.sbatch("--output=doomed.log", f"--wrap={command}")
    live = bed.sbatch("--output=live.log", f"--wrap={command}")
    # Another user's orphan in root's storage: a real cluster made through the runner,
    # labelled kstest's, its state record in "their" XDG_RUNTIME_DIR, owned by the job
    # that is about to end.
    relabel = bed.script("podman-as-kstest", RELABEL.format(podman=shutil.which("podman")))
    spec = RunnerSpec(workdir=str(bed.work), node_image=bed.image, runtime_bin=str(relabel))
    (bed.root / "xdg").mkdir(mode=0o700)
    foreign = subprocess.Popen(
        [sys.executable, "-m", "snakemake_executor_plugin_kindslurm.runner", "--spec",
         spec.to_json(), "--", "./hold.sh"],
        cwd=bed.work,
        env=bed.env(SLURM_JOB_ID=doomed, TAG="foreign", XDG_RUNTIME_DIR=str(bed.root / "xdg")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    bed.pids.add(foreign.pid)
    # Somebody's own kind cluster: kind's label, none of ours.
    manual = f"manual-{os.getpid()}"
    bed.clusters.add(manual)
    subprocess.run(
        ["kind", "create", "cluster", "--name", manual, "--image", bed.image,
         "--kubeconfig", str(bed.root / "manual-kubeconfig")],
        capture_output=True, timeout=180, check=True,
        env={**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"},
    )  # fmt: skip
    names = {}
    for key, job in (("doomed", doomed), ("live", live), ("foreign", "foreign")):
        names[key] = read_when_there(bed.work / f"cluster-{job}", 120)
        bed.clusters.add(names[key])
    bed.pids.add(int(read_when_there(bed.work / "pid-foreign")))  # its workload
    assert kind_node_containers(names["foreign"])

    # kill -9 the doomed job's runner (the batch shell): its job ends, its nodes stay.
    (record,) = state_records(names["doomed"])
    os.kill(json.loads(Path(record).read_text())["runner_pid"], signal.SIGKILL)
    assert wait_until(lambda: not job_active(doomed), 60)
    foreign.kill()
    foreign.wait(timeout=30)
    assert kind_node_containers(names["doomed"])

    mine = listed(bed)
    assert (mine[names["doomed"]]["alive"], mine[names["doomed"]]["orphan"]) == (False, True)
    assert mine[names["doomed"]]["job_state"] == "FAILED"
    assert (mine[names["live"]]["alive"], mine[names["live"]]["job_state"]) == (True, "RUNNING")
    assert names["foreign"] not in mine and manual not in mine
    everyone = listed(bed, "--all-users")
    assert everyone[names["foreign"]]["user"] == "kstest"
    assert everyone[names["foreign"]]["alive"] is not True
    assert manual not in everyone

    dry = bed.kindslurm("gc")
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {names['doomed']}: job {doomed} ended: FAILED" in dry.stdout
    assert names["live"] not in dry.stdout and names["foreign"] not in dry.stdout + dry.stderr
    assert kind_node_containers(names["doomed"]), "a dry run deleted something"
    epilog = bed.kindslurm("gc", "--job", doomed)  # as a Slurm epilog would (dry run)
    assert epilog.returncode == 0, epilog.stderr
    assert (
        epilog.stdout.splitlines()[0] == f"would delete {names['doomed']}: job {doomed} has ended"
    )
    assert names["live"] not in epilog.stdout + epilog.stderr

    targets = [names["doomed"], names["live"], names["foreign"], manual]
    done = bed.kindslurm("gc", "--yes", *targets)
    assert done.returncode == 0, done.stderr
    assert f"deleted {names['doomed']}" in done.stdout
    assert f"keeping {names['live']}: job {live} is RUNNING" in done.stderr
    assert f"{names['foreign']}: not among root's" in done.stderr
    assert f"{manual}: not among root's" in done.stderr
    assert_nothing_left(names["doomed"], bed.tmp)
    assert kind_node_containers(names["live"])
    assert kind_node_containers(names["foreign"])
    assert kind_node_containers(manual)

    done = bed.kindslurm("gc", "--yes", "--all-users", names["foreign"], manual)
    assert done.returncode == 0, done.stderr
    assert f"deleted {names['foreign']}" in done.stdout
    assert not kind_node_containers(names["foreign"])
    assert kind_node_containers(manual), "gc deleted a cluster kindslurm did not create"

    subprocess.run(["scancel", live], check=True, timeout=60)
    assert wait_until(lambda: not job_active(live), 60)
    subprocess.run(
        ["kind", "delete", "cluster", "--name", manual,
         "--kubeconfig", str(bed.root / "manual-kubeconfig")],
        capture_output=True, timeout=120, check=True,
        env={**os.environ, "KIND_EXPERIMENTAL_PROVIDER": "podman"},
    )  # fmt: skip
    # The foreign runner's private leftovers (its record and temp dir) are "kstest's":
    # root's gc could not see them; remove them as their owner would.
    shutil.rmtree(bed.root / "xdg")
    for leftover in bed.tmp.glob(f"kindslurm-{names['foreign']}-*"):
        shutil.rmtree(leftover)
    for name in (names["doomed"], names["live"], names["foreign"], manual):
        bed.nothing_left(name)


TESTBED_EPILOG = "/var/lib/kindslurm-testbed/epilog.sh"
EPILOG_HOOK = Path("/var/lib/kindslurm-testbed/epilog.d/kindslurm.sh")
EPILOG_LOG = Path("/var/log/kindslurm-testbed/epilog.log")


def documented_epilog() -> str:
    """The epilog script `kindslurm --help` gives administrators, as printed."""
    from snakemake_executor_plugin_kindslurm import cli

    lines = (cli.__doc__ or "").splitlines()
    start = lines.index("    #!/bin/sh")
    end = next(i for i in range(start, len(lines)) if lines[i].lstrip().startswith("exit 0"))
    return textwrap.dedent("\n".join(lines[start : end + 1])) + "\n"


def test_documented_epilog_removes_the_cluster_of_a_killed_runner(bed: Bed) -> None:
    """kill -9 the runner (the batch shell): Slurm ends the job but cannot
    remove root Podman's node container; the node's epilog, running the
    snippet from `kindslurm --help` as root, deletes it, with no gc by hand."""
    config = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    if not re.search(rf"^Epilog\s*=\s*{re.escape(TESTBED_EPILOG)}$", config, re.M):
        missing(f"the test bed's epilog {TESTBED_EPILOG} in slurm.conf (testbed/slurm.sh start)")
    script = documented_epilog()
    assert "/opt/kindslurm/bin/kindslurm gc --yes --all-users --job" in script
    EPILOG_HOOK.write_text(script.replace("/opt/kindslurm/bin/kindslurm", KINDSLURM))
    EPILOG_HOOK.chmod(0o755)
    try:
        bed.script("hold.sh", HOLD)
        command = f"exec {KINDSLURM} run --node-image {bed.image} ./hold.sh"
        job = bed.sbatch("--output=held.log", f"--wrap={command}")
        name = read_when_there(bed.work / f"cluster-{job}", 120)
        bed.clusters.add(name)
        (record,) = state_records(name)
        os.kill(json.loads(Path(record).read_text())["runner_pid"], signal.SIGKILL)
        gone = wait_until(lambda: not kind_node_containers(name), 120)
        said = f"deleted {name} (job {job} has ended)"
        wait_until(lambda: EPILOG_LOG.exists() and said in EPILOG_LOG.read_text(), 30)
        log = EPILOG_LOG.read_text() if EPILOG_LOG.exists() else "(no epilog log)"
        assert gone, f"the epilog left {name}:\n{log[-2000:]}"
        assert said in log, log[-2000:]
        assert wait_until(lambda: not job_active(job), 60)
        assert sacct(job)[0] == "FAILED"
        bed.nothing_left(name)
    finally:
        EPILOG_HOOK.unlink(missing_ok=True)


def test_all_users_is_root_only(bed: Bed) -> None:
    if shutil.which("runuser") is None or subprocess.run(["id", "kstest"]).returncode != 0:
        missing("user kstest (testbed/slurm.sh add-user kstest)")
    for command in ("list", "gc"):
        done = subprocess.run(
            ["runuser", "-u", "kstest", "--", KINDSLURM, command, "--all-users"],
            capture_output=True, text=True, timeout=60, cwd="/",
        )  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert "only root may use --all-users" in done.stderr


# --------------------------------------------------------------- doctor ---


def test_doctor_prints_every_check(bed: Bed) -> None:
    expected = [r.name for r in run_preflight(RunnerSpec(node_image=bed.image))]
    human = bed.kindslurm("doctor", *bed.image_options())
    for name in expected:
        assert re.search(rf"^\[(ok|warn|fail)\] {re.escape(name)}: ", human.stdout, re.M), name
    as_json = bed.kindslurm("doctor", "--json", *bed.image_options())
    entries = json.loads(as_json.stdout)
    assert [e["name"] for e in entries] == expected
    failed = any(e["status"] == "fail" for e in entries)
    assert human.returncode == as_json.returncode == (1 if failed else 0)
    assert ("is not ready for Kind" if failed else "is ready for Kind") in human.stdout
