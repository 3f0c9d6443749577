"""The whole product: Snakemake -> real Slurm -> runner -> real kind + Podman
(stand-in node image). Every test ends by checking that no node container,
volume, kubeconfig dir, temp dir or state record of ours is left."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .leakcheck import assert_nothing_left, kind_node_containers, leftovers
from .workflows import run_snakemake, snakemake_argv, squeue_jobs, wait_until, write_workflow

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("slurm")]

CLUSTER_NAME = re.compile(r"\bks-[a-z0-9-]+-[a-z0-9]{6}\b")


@pytest.fixture
def image(kind_ready: str) -> Iterator[str]:
    """The stand-in image, plus a check that the test left nothing new behind."""
    before = leftovers()
    yield kind_ready
    assert wait_until(lambda: not (leftovers() - before), 60), (leftovers() - before).describe()
    assert_nothing_left(before=before)


def kind_args(image: str, *extra: str) -> list[str]:
    return ["--kindslurm-node-image", image, *extra]


def test_rules_use_their_cluster_and_app_mount(tmp_path: Path, image: str) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: "report.txt"

        rule k8s:
            output: "from-node.txt", "view.yaml", "name.txt"
            shell:
                '''
                test -n "$K8S_CLUSTER_NAME"
                test -f "$KUBECONFIG"
                echo "$K8S_CLUSTER_NAME" > name.txt
                kubectl --context "$K8S_CLUSTER_NAME" config view > view.yaml
                kubectl config current-context >> name.txt
                podman exec "$K8S_CLUSTER_NAME-control-plane" sh -c 'echo written-in-node > /app/from-node.txt'
                '''

        rule report:
            input: "from-node.txt"
            output: "report.txt"
            resources: kind_cluster=0
            shell: "cat {input} > {output}"
        """,
    )
    done = run_snakemake(wd, *kind_args(image))
    assert done.returncode == 0, done.output
    assert (wd / "report.txt").read_text() == "written-in-node\n"
    name, current = (wd / "name.txt").read_text().split()
    assert CLUSTER_NAME.fullmatch(name), name
    assert current == name, "the kubeconfig's current context must be the cluster's name"
    assert f"name: {name}" in (wd / "view.yaml").read_text()
    assert kind_node_containers(name) == []


def test_failing_workload_is_reported_and_cluster_removed(tmp_path: Path, image: str) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule k8s:
            output: "never.txt"
            shell: 'echo "$K8S_CLUSTER_NAME" > name.txt; exit 7'
        """,
    )
    done = run_snakemake(wd, *kind_args(image))
    assert done.returncode != 0
    assert "ended with state FAILED" in done.output, done.output
    name = (wd / "name.txt").read_text().strip()
    assert kind_node_containers(name) == []


def test_cluster_creation_failure_says_so_with_kinds_output(tmp_path: Path, image: str) -> None:
    never_ready = image.rsplit(":", 1)[0] + ":never-ready"
    wd = write_workflow(
        tmp_path / "wf",
        f"""
        rule k8s:
            output: "never.txt"
            resources: kind_node_image="{never_ready}"
            shell: "touch {{output}}"
        """,
    )
    done = run_snakemake(wd, *kind_args(image), timeout=300)
    assert done.returncode != 0
    assert "cluster creation failed" in done.output, done.output
    logs = list((wd / ".snakemake" / "kindslurm_logs").rglob("*.log"))
    log = "\n".join(p.read_text() for p in logs if p.parent.name == "rule_k8s")
    assert "could not find a log line" in log, log  # kind's own words
    assert list((wd / ".snakemake" / "kindslurm_logs").rglob("kind-logs-ks-*")), (
        "kind export logs must land next to the job log"
    )
    assert not (wd / "never.txt").exists()


def test_invalid_kind_config_is_refused_before_submission(tmp_path: Path, image: str) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule k8s:
            output: "never.txt"
            resources: kind_config="bad-kind.yaml"
            shell: "touch {output}"
        """,
        files={
            "bad-kind.yaml": "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"
            "nodes:\n- role: boss\n"
        },
    )
    done = run_snakemake(wd, *kind_args(image))
    assert done.returncode != 0
    assert "invalid Kind config" in done.output and "bad-kind.yaml" in done.output, done.output
    assert "as Slurm job" not in done.output


def _job_log(wd: Path) -> Path | None:
    found = sorted((wd / ".snakemake" / "kindslurm_logs").rglob("*.log"))
    return found[0] if found else None


def _start(wd: Path, image: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        snakemake_argv(wd, *kind_args(image, *extra)),
        cwd=wd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _jobid(log: Path) -> str:
    return log.stem


@pytest.mark.parametrize("moment", ["during-create", "during-workload"])
def test_scancel_removes_the_cluster(tmp_path: Path, image: str, moment: str) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule k8s:
            output: "never.txt"
            shell: 'echo "$K8S_CLUSTER_NAME" > name.txt; sleep 600; touch {output}'
        """,
    )
    marker = "kind create cluster" if moment == "during-create" else "workload: running"
    proc = _start(wd, image)
    try:
        assert wait_until(
            lambda: (log := _job_log(wd)) is not None and marker in log.read_text(), 120, 0.1
        ), _job_log(wd).read_text() if _job_log(wd) else "no job log"
        log = _job_log(wd)
        assert log is not None
        name_match = CLUSTER_NAME.search(log.read_text())
        assert name_match, log.read_text()
        subprocess.run(["scancel", _jobid(log)], check=True)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "CANCELLED" in out, out
    # Within Slurm's KillWait (30 s) the runner must have deleted the cluster.
    assert wait_until(lambda: kind_node_containers(name_match.group(0)) == [], 30)
    text = log.read_text()
    assert f"cluster {name_match.group(0)} deleted" in text, text


@pytest.mark.slow
def test_time_limit_reports_timeout_and_removes_the_cluster(tmp_path: Path, image: str) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule k8s:
            output: "never.txt"
            resources: runtime=1
            shell: 'echo "$K8S_CLUSTER_NAME" > name.txt; sleep 600; touch {output}'
        """,
    )
    done = run_snakemake(
        wd, *kind_args(image, "--kindslurm-cleanup-grace-seconds", "30"), timeout=400
    )
    assert done.returncode != 0
    assert "ended with state TIMEOUT" in done.output, done.output
    # One minute is too short for the time-limit warning (Slurm may send it up to
    # 60 s early, i.e. as the job starts): none is asked for, the user is told,
    # and the runner cleans up on the SIGTERM Slurm sends at the limit.
    assert "runtime 1 min is too short for a time-limit warning" in done.output, done.output
    log = _job_log(wd)
    assert log is not None, "the failed job's log must be kept"
    match = CLUSTER_NAME.search(log.read_text())
    assert match, log.read_text()
    name = match.group(0)
    assert (wd / "name.txt").read_text().strip() == name, "the workload must have run"
    # sacct says TIMEOUT as soon as the limit is reached, while the runner is still
    # cleaning up in Slurm's KillWait (30 s here), as after scancel.
    assert wait_until(lambda: f"cluster {name} deleted" in log.read_text(), 30), log.read_text()
    text = log.read_text()
    assert "received SIGUSR1" not in text, text
    assert "received SIGTERM" in text, text
    assert kind_node_containers(name) == []


def test_the_warning_fits_the_partitions_default_time(tmp_path: Path, image: str) -> None:
    # Partition `short` gives jobs without --time 2 minutes: too short for a warning
    # that may come 60 s early. A rule that sets runtime=5 there keeps it.
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: "default.txt", "five.txt"

        rule by_default:
            output: "default.txt"
            resources: slurm_partition="short"
            shell: 'echo "$K8S_CLUSTER_NAME" > {output}'

        rule five:
            output: "five.txt"
            resources: slurm_partition="short", runtime=5
            shell: 'echo "$K8S_CLUSTER_NAME" > {output}'
        """,
    )
    done = run_snakemake(wd, *kind_args(image), "--verbose", timeout=400)
    assert done.returncode == 0, done.output
    sbatch = {
        rule: line
        for line in done.output.splitlines()
        if "sbatch --parsable" in line
        for rule in ("by_default", "five")
        if f"rule={rule}" in line
    }
    assert set(sbatch) == {"by_default", "five"}, done.output
    assert "--signal" not in sbatch["by_default"] and "--time" not in sbatch["by_default"]
    assert "--signal=B:USR1@60" in sbatch["five"] and "--time=5" in sbatch["five"]
    told = "rule by_default: runtime 2 min (its partition's default; set the resource runtime)"
    assert told in done.output, done.output
    assert "rule five: runtime" not in done.output
    for output in ("default.txt", "five.txt"):
        assert (wd / output).read_text().startswith("ks-")


def test_ctrl_c_cancels_jobs_and_every_cluster_goes(tmp_path: Path, image: str) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: expand("s{i}.txt", i=range(2))

        rule k8s:
            output: "s{i}.txt"
            shell: 'echo "$K8S_CLUSTER_NAME" > name{wildcards.i}.txt; sleep 600; touch {output}'
        """,
    )
    proc = _start(wd, image)
    run_name = None
    try:
        assert wait_until(
            lambda: all((wd / f"name{i}.txt").exists() for i in range(2)), 180, 0.2
        ), "both clusters should be up"
        names = [(wd / f"name{i}.txt").read_text().strip() for i in range(2)]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
        match = re.search(r"jobs of this run are named (kindslurm-[0-9a-f]+)", out)
        assert match, out
        run_name = match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if run_name:
            subprocess.run(["scancel", f"--name={run_name}"], check=False)
    assert "cancelled Slurm jobs" in out, out
    assert wait_until(lambda: squeue_jobs(run_name) == [], 60)
    for name in names:
        assert wait_until(lambda n=name: kind_node_containers(n) == [], 30), name


def test_four_jobs_at_once_get_four_clusters(tmp_path: Path, image: str) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: expand("c{i}.txt", i=range(4))

        rule k8s:
            output: "c{i}.txt"
            resources: mem_mb=500
            threads: 1
            shell:
                '''
                podman exec "$K8S_CLUSTER_NAME-control-plane" sh -c 'echo {wildcards.i} > /app/n{wildcards.i}.txt'
                kubectl --context "$K8S_CLUSTER_NAME" config view -o jsonpath='{{.clusters[0].cluster.server}}' > srv{wildcards.i}.txt
                podman port "$K8S_CLUSTER_NAME-control-plane" 6443/tcp > port{wildcards.i}.txt
                echo "$K8S_CLUSTER_NAME $KUBECONFIG" > {output}
                '''
        """,
    )
    # The node has 2 CPUs: let the four one-CPU jobs overlap as far as Slurm allows.
    done = run_snakemake(wd, *kind_args(image), jobs=4, timeout=600)
    assert done.returncode == 0, done.output
    rows = [(wd / f"c{i}.txt").read_text().split() for i in range(4)]
    names = {r[0] for r in rows}
    kubeconfigs = {r[1] for r in rows}
    assert len(names) == 4 and len(kubeconfigs) == 4
    # Ports: each kubeconfig points at its own cluster's published API port. (At
    # most two clusters exist at once here, so a later one may get a port an
    # earlier, deleted one had: distinct ports are only owed to concurrent ones.)
    for i in range(4):
        server = (wd / f"srv{i}.txt").read_text().strip()
        published = (wd / f"port{i}.txt").read_text().strip()
        assert server == f"https://{published}", (server, published)
    for i in range(4):
        assert (wd / f"n{i}.txt").read_text().strip() == str(i)
    for name in names:
        assert kind_node_containers(name) == []


def test_group_of_kubernetes_rules_shares_one_cluster(tmp_path: Path, image: str) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: "c.txt"

        rule a:
            output: "a.txt"
            group: "k8s"
            shell: 'echo "$K8S_CLUSTER_NAME" > {output}'

        rule b:
            input: "a.txt"
            output: "b.txt"
            group: "k8s"
            shell: 'echo "$K8S_CLUSTER_NAME" > {output}'

        rule c:
            input: "b.txt"
            output: "c.txt"
            group: "k8s"
            resources: kind_cluster=0
            shell: 'echo "${{K8S_CLUSTER_NAME:-none}}" > {output}'
        """,
    )
    done = run_snakemake(wd, *kind_args(image, "--kindslurm-keep-successful-logs"))
    assert done.returncode == 0, done.output
    a, b, c = ((wd / f"{x}.txt").read_text().strip() for x in "abc")
    assert CLUSTER_NAME.fullmatch(a) and a == b
    # c runs in the same Slurm job, so it sees the group's cluster too.
    assert c == a
    logs = list((wd / ".snakemake" / "kindslurm_logs").rglob("*.log"))
    assert len(logs) == 1, logs
    assert logs[0].read_text().count("kind create cluster") == 1
    assert kind_node_containers(a) == []
