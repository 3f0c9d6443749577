"""The example workflows in example-workflows/, checked as far as this machine allows.

- every manifest goes through the real `kubectl apply --dry-run=client` (against
  a discovery-only fake API server, so it runs offline) and `snakemake -n` with
  the example's profile lists the expected jobs;
- the plain (kind_cluster=0) rules run for real on the single-node Slurm. The
  Kubernetes steps between them cannot run here (no Kubernetes API), so the test
  puts their outputs in place: recorded sysbench reports, and for the Jobs the
  manifest's own container command run on the host (busybox sh / python);
- the cluster lifecycle runs through the real executor, kind and Podman with
  the stand-in node image and each example's profile, using a test-only
  Snakefile (the examples' own rules need a real API server);
- `realkind` tests run every example end to end; they need a real kindest/node
  image and a Kubernetes API, i.e. the hosted CI (.github/workflows/ci.yml).

Example runs happen in copies under tmp_path, never in the source tree.
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
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import missing

from .leakcheck import assert_nothing_left
from .workflows import Finished

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO / "example-workflows"
DATA = REPO / "tests" / "data" / "examples"
PROFILE = Path("profiles") / "kindslurm"
# What a run of an example creates; a copy of the source tree leaves it out.
GENERATED = (".snakemake", "results", "work", "images", "train.csv", "test.csv")
REALKIND_REASON = "needs a real kindest/node image and a Kubernetes API (hosted CI only)"


@dataclass(frozen=True)
class Example:
    name: str
    jobs: dict[str, int]  # rule -> number of jobs in a full dry run
    manifests: dict[str, list[str]]  # manifest file -> `kubectl ... -o name` lines

    @property
    def source(self) -> Path:
        return EXAMPLES_DIR / self.name


EXAMPLES = [
    Example(
        "sysbench",
        {"sysbench_cpu": 2, "summary": 1, "all": 1},
        {"sysbench-cpu-pod.yaml": ["pod/sysbench-cpu"]},
    ),
    Example(
        "pytorch-job",
        {"make_dataset": 1, "train": 1, "evaluate": 1, "all": 1},
        {"train-job.yaml": ["job.batch/train"]},
    ),
    Example(
        "mixed-pipeline",
        {
            "normalize": 2,
            "sample_sheet": 1,
            "count_words": 2,
            "merge_counts": 1,
            "top_words": 1,
            "report": 1,
            "all": 1,
        },
        {
            "count-words-job.yaml": ["job.batch/count-words"],
            "merge-counts-job.yaml": ["job.batch/merge-counts"],
            "top-words-job.yaml": ["job.batch/top-words"],
        },
    ),
]
BY_NAME = {example.name: example for example in EXAMPLES}
EXAMPLE_PARAMS = [pytest.param(example, id=example.name) for example in EXAMPLES]


def copy_example(name: str, parent: Path) -> Path:
    dest = parent / name
    shutil.copytree(EXAMPLES_DIR / name, dest, ignore=shutil.ignore_patterns(*GENERATED))
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without a cluster's coordinates (a plain job must not inherit any)."""
    env = {k: v for k, v in os.environ.items() if k not in ("K8S_CLUSTER_NAME", "KUBECONFIG")}
    env.update(extra)
    return env


def run_example(workdir: Path, *args: str, timeout: float = 300) -> Finished:
    """`snakemake --workflow-profile profiles/kindslurm ARGS` in a copy of an example."""
    argv = [
        sys.executable, "-m", "snakemake",
        "--workflow-profile", str(PROFILE),
        "--kindslurm-init-seconds-before-status-checks", "1",
        *args,
    ]  # fmt: skip
    with subprocess.Popen(
        argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=clean_env()
    ) as proc:
        try:
            said, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(proc)
            said, _ = proc.communicate()
            said += f"\n[timed out after {timeout:g} s]".encode()
    return Finished(proc.returncode, said.decode(errors="replace"), workdir)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a Snakemake still running: Ctrl-C (it cancels its Slurm jobs), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def parse_job_stats(output: str) -> dict[str, int]:
    """The first `Job stats:` table of a Snakemake run or dry run, without the total."""
    lines = output.splitlines()
    start = lines.index("Job stats:") + 3  # header and dashes
    jobs: dict[str, int] = {}
    for line in lines[start:]:
        rule, _, count = line.partition(" ")
        if rule == "total" or not count.strip().isdigit():
            break
        jobs[rule] = int(count)
    return jobs


def test_every_example_is_covered() -> None:
    present = sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/Snakefile"))
    assert present == sorted(BY_NAME), "add new examples to EXAMPLES (and to ci.yml)"


# ------------------------------------------------- (a) manifests, dry runs ---


def _resource(name: str, kind: str, namespaced: bool = True) -> dict[str, Any]:
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    return {
        "name": name, "singularName": kind.lower(), "namespaced": namespaced,
        "kind": kind, "verbs": verbs,
    }  # fmt: skip


# Just enough discovery for kubectl to map the kinds the examples use; any
# other kind fails as it would on a cluster without it.
DISCOVERY: dict[str, dict[str, Any]] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "batch",
                "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"},
            }
        ],
    },
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            _resource("pods", "Pod"),
            _resource("configmaps", "ConfigMap"),
            _resource("namespaces", "Namespace", namespaced=False),
        ],
    },
    "/apis/batch/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "batch/v1",
        "resources": [_resource("jobs", "Job")],
    },
}
NOT_FOUND = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
             "code": 404}  # fmt: skip


class _DiscoveryOnly(BaseHTTPRequestHandler):
    """Answers API discovery; every object is NotFound, every write is refused.

    `kubectl apply --dry-run=client` needs discovery (kind -> resource) and
    GETs the live object to compute its patch; NotFound makes it a create.
    """

    writes: list[str] = []

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        doc = DISCOVERY.get(self.path.split("?", 1)[0])
        self._send(200, doc) if doc else self._send(404, NOT_FOUND)

    def _refuse(self) -> None:
        self.writes.append(f"{self.command} {self.path}")
        self._send(405, {**NOT_FOUND, "code": 405, "reason": "MethodNotAllowed"})

    do_POST = do_PUT = do_PATCH = do_DELETE = _refuse

    def log_message(self, *args: object) -> None:
        pass


@dataclass(frozen=True)
class OfflineKubectl:
    argv: list[str]  # kubectl with a throwaway kubeconfig and discovery cache
    env: dict[str, str]  # HOME in the same throwaway place: ~/.kube stays untouched


@pytest.fixture(scope="module")
def offline_kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineKubectl]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        missing("kubectl not on PATH (testbed/kind.sh install)")
    assert kubectl is not None  # missing() skips or fails
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DiscoveryOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path_factory.mktemp("kubectl-home")
    kubeconfig = home / "kubeconfig"
    url = f"http://127.0.0.1:{server.server_address[1]}"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "offline", "cluster": {"server": url}}],
                "users": [{"name": "offline", "user": {"token": "offline"}}],
                "contexts": [
                    {"name": "offline", "context": {"cluster": "offline", "user": "offline"}}
                ],
                "current-context": "offline",
            }
        )
    )
    try:
        yield OfflineKubectl(
            [kubectl, f"--kubeconfig={kubeconfig}", f"--cache-dir={home / 'cache'}",
             "--request-timeout=10s"],
            clean_env(HOME=str(home)),
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert not _DiscoveryOnly.writes, f"a dry run wrote to the API: {_DiscoveryOnly.writes}"


@pytest.mark.parametrize("example", EXAMPLE_PARAMS)
def test_manifests_pass_kubectl_client_dry_run(
    example: Example, offline_kubectl: OfflineKubectl
) -> None:
    found = sorted(p.name for p in (example.source / "manifests").glob("*.yaml"))
    assert found == sorted(example.manifests)
    for name, expected in example.manifests.items():
        manifest = example.source / "manifests" / name
        proc = subprocess.run(
            [*offline_kubectl.argv, "apply", "--dry-run=client", "--validate=false",
             "-f", str(manifest), "-o", "name"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
            env=offline_kubectl.env,
        )  # fmt: skip
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        assert proc.stdout.split() == expected, f"{name}: {proc.stdout}{proc.stderr}"


def _containers(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    pod_spec = doc["spec"]["template"]["spec"] if doc["kind"] == "Job" else doc["spec"]
    return pod_spec["containers"], pod_spec


@pytest.mark.parametrize("example", EXAMPLE_PARAMS)
def test_manifests_use_the_workflow_directory_at_app(example: Example) -> None:
    """Every workload mounts the Kind node's /app (the workflow directory) at /app,
    starts there, and keeps preloaded images usable (IfNotPresent)."""
    for path in sorted((example.source / "manifests").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        containers, pod_spec = _containers(doc)
        volumes = {v["name"]: v for v in pod_spec["volumes"]}
        for container in containers:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "/app" in mounts, path.name
            assert volumes[mounts["/app"]]["hostPath"] == {"path": "/app", "type": "Directory"}
            assert container["workingDir"] == "/app", path.name
            assert container["imagePullPolicy"] == "IfNotPresent", path.name
        assert "namespace" not in doc["metadata"], f"{path.name}: the rule picks the namespace"


@pytest.mark.parametrize("example", EXAMPLE_PARAMS)
def test_dry_run_with_the_profile_lists_the_expected_jobs(example: Example, tmp_path: Path) -> None:
    workdir = copy_example(example.name, tmp_path)
    done = run_example(workdir, "--dry-run", timeout=120)
    assert done.returncode == 0, done.output
    assert parse_job_stats(done.output) == example.jobs, done.output


# ---------------------------------------- (b) plain rules on the real Slurm ---


def run_container_on_host(manifest: Path, workdir: Path, env: dict[str, str]) -> str:
    """Run a manifest's container command on the host, as the Job would in /app.

    Only for putting a Kubernetes step's outputs in place here: `/bin/sh` is
    busybox's (the examples' image), `python` ours, `/app` the workdir.
    """
    doc = yaml.safe_load(manifest.read_text())
    (container,), _ = _containers(doc)
    argv = [*container["command"], *container.get("args", [])]
    argv = [str(workdir / a.removeprefix("/app/")) if a.startswith("/app/") else a for a in argv]
    if argv[0] == "/bin/sh":
        busybox = shutil.which("busybox")
        if busybox is None:
            missing("busybox not on PATH (testbed/kind.sh install)")
        argv = [busybox, "sh", *argv[1:]]
    elif argv[0] == "python":
        argv[0] = sys.executable
    proc = subprocess.run(
        argv, cwd=workdir, capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ["PATH"], **env},
    )  # fmt: skip
    assert proc.returncode == 0, f"{manifest.name}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def only_rule(done: Finished, rule: str) -> None:
    assert done.returncode == 0, done.output
    assert set(parse_job_stats(done.output)) == {rule}, done.output
    assert "(no Kind cluster)" in done.output, done.output


@pytest.mark.usefixtures("slurm")
def test_sysbench_summary_runs_on_slurm(tmp_path: Path) -> None:
    workdir = copy_example("sysbench", tmp_path)
    results = workdir / "results"
    results.mkdir()
    for threads in (1, 2):
        # What the Pod would write through /app, and its `kubectl logs`.
        report = DATA / "sysbench" / f"cpu-{threads}threads.report.txt"
        shutil.copy(report, results / report.name)
        shutil.copy(report, results / f"cpu-{threads}threads.log")
    done = run_example(
        workdir, "results/summary.tsv", "--allowed-rules", "summary", "--rerun-triggers", "mtime"
    )
    only_rule(done, "summary")
    rows = [line.split("\t") for line in (results / "summary.tsv").read_text().splitlines()]
    assert rows == [
        ["threads", "events_per_second", "total_events", "total_time_s"],
        ["1", "3377.13", "16890", "5.0003"],
        ["2", "6778.48", "33901", "5.0003"],
    ]


@pytest.mark.usefixtures("slurm")
def test_pytorch_job_plain_steps_run_on_slurm(tmp_path: Path) -> None:
    workdir = copy_example("pytorch-job", tmp_path)
    done = run_example(workdir, "data/train.csv", "data/test.csv")
    only_rule(done, "make_dataset")
    assert len((workdir / "data" / "train.csv").read_text().splitlines()) == 801
    assert len((workdir / "data" / "test.csv").read_text().splitlines()) == 201

    # The training Job's own command, as its ConfigMap would configure it.
    (workdir / "results").mkdir()
    log = run_container_on_host(
        workdir / "manifests" / "train-job.yaml",
        workdir,
        {"TRAIN_DATA": "data/train.csv", "MODEL_OUT": "results/model.json",
         "EPOCHS": "300", "LEARNING_RATE": "0.1"},
    )  # fmt: skip
    (workdir / "results" / "train.log").write_text(log)

    done = run_example(
        workdir, "results/evaluation.txt", "--allowed-rules", "evaluate",
        "--rerun-triggers", "mtime",
    )  # fmt: skip
    only_rule(done, "evaluate")
    evaluation = dict(
        line.split("\t")
        for line in (workdir / "results" / "evaluation.txt").read_text().splitlines()
    )
    assert abs(float(evaluation["weight"]) - 3.0) < 0.05
    assert abs(float(evaluation["bias"]) + 2.0) < 0.05
    assert float(evaluation["test_mse"]) < 0.02  # the noise is N(0, 0.1): mse ~0.01


@pytest.mark.usefixtures("slurm")
def test_mixed_pipeline_plain_steps_run_on_slurm(tmp_path: Path) -> None:
    workdir = copy_example("mixed-pipeline", tmp_path)
    done = run_example(workdir, "work/samples.tsv")
    assert done.returncode == 0, done.output
    assert parse_job_stats(done.output) == {"normalize": 2, "sample_sheet": 1}
    assert done.output.count("(no Kind cluster)") == 3
    assert (workdir / "work" / "samples.tsv").read_text() == "batch\t62\t41\ncluster\t67\t44\n"
    words = (workdir / "work" / "words" / "batch.txt").read_text().split("\n")
    assert words[:4] == ["a", "batch", "system", "queues"]

    # The Kubernetes steps' outputs: their Jobs' own commands, with the values
    # the rules put in the ConfigMaps, and the records the rules would write
    # (made-up Slurm jobs and clusters; the group's two rules share one).
    manifests, work = workdir / "manifests", workdir / "work"
    (work / "counts").mkdir()
    (work / "logs").mkdir()
    steps = [
        ("count_words-batch", "count_words batch", "901", "ks-901-aaaaaa", "count-words-job.yaml",
         {"WORDS": "work/words/batch.txt", "COUNTS": "work/counts/batch.tsv"}),
        ("count_words-cluster", "count_words cluster", "902", "ks-902-bbbbbb",
         "count-words-job.yaml",
         {"WORDS": "work/words/cluster.txt", "COUNTS": "work/counts/cluster.tsv"}),
        ("merge_counts", "merge_counts", "903", "ks-903-cccccc", "merge-counts-job.yaml",
         {"INPUTS": "work/counts/batch.tsv work/counts/cluster.tsv",
          "MERGED": "work/merged.tsv"}),
        ("top_words", "top_words", "903", "ks-903-cccccc", "top-words-job.yaml",
         {"MERGED": "work/merged.tsv", "TOP": "10", "OUT": "work/top.tsv"}),
    ]  # fmt: skip
    for stem, step, job, cluster, manifest, params in steps:
        log = run_container_on_host(manifests / manifest, workdir, params)
        (work / "logs" / f"{stem}.log").write_text(log)
        (work / "where" / f"{stem}.tsv").write_text(f"{step}\t{job}\t{cluster}\n")
    assert (work / "top.tsv").read_text().splitlines()[0] == "the\t10\t7.8"

    done = run_example(
        workdir, "results/report.md", "--allowed-rules", "report", "--rerun-triggers", "mtime"
    )
    only_rule(done, "report")
    report = (workdir / "results" / "report.md").read_text()
    assert "| batch | 62 | 41 |" in report
    assert "| the | 10 | 7.8 |" in report
    assert len(re.findall(r"^\| (normalize \w+|sample_sheet|report) \| \d+ \| none \|$",
                          report, re.M)) == 4  # fmt: skip
    assert "3 Kind cluster(s) were created" in report
    assert "- ks-903-cccccc: merge_counts, top_words" in report


FAKE_KUBECTL = """#!/bin/sh
# Test double for the calls scripts/run-job.sh makes: logs its argv, one line each.
printf '%s\\n' "$*" >> "$KUBECTL_CALLS"
case "$*" in
    *" apply -f "*) echo job.batch/count-words ;;
    *" wait "*) exit "${WAIT_EXIT:-0}" ;;
    *" logs "*) echo "the Job's log" ;;
    *" describe "*) echo "the Job's description" ;;
esac
"""


@pytest.mark.parametrize("wait_exit", [0, 1], ids=["job-completes", "job-does-not-complete"])
def test_mixed_pipeline_run_job_helper_calls_kubectl_in_order(
    tmp_path: Path, wait_exit: int
) -> None:
    """The kubectl calls of mixed-pipeline's scripts/run-job.sh (no API here: a test double)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(FAKE_KUBECTL)
    (bin_dir / "kubectl").chmod(0o755)
    calls, log = tmp_path / "calls", tmp_path / "job.log"
    proc = subprocess.run(
        ["bash", str(EXAMPLES_DIR / "mixed-pipeline" / "scripts" / "run-job.sh"),
         "count-batch", "manifests/count-words-job.yaml", str(log), "15m",
         "WORDS=work/words/batch.txt", "COUNTS=work/counts/a b.tsv"],
        capture_output=True, text=True, timeout=60,
        env=clean_env(PATH=f"{bin_dir}:{os.environ['PATH']}", K8S_CLUSTER_NAME="ks-1-abc",
                      KUBECTL_CALLS=str(calls), WAIT_EXIT=str(wait_exit)),
    )  # fmt: skip
    ns = "--context ks-1-abc --namespace count-batch"
    expected = [
        "--context ks-1-abc create namespace count-batch",
        f"{ns} create configmap job-params --from-literal=WORDS=work/words/batch.txt "
        "--from-literal=COUNTS=work/counts/a b.tsv",
        f"{ns} apply -f manifests/count-words-job.yaml -o name",
        f"{ns} wait --for=condition=complete job.batch/count-words --timeout=15m",
    ]
    if wait_exit == 0:
        assert proc.returncode == 0, proc.stderr
        assert calls.read_text().splitlines() == [*expected, f"{ns} logs job.batch/count-words"]
        assert log.read_text() == "the Job's log\n"
    else:
        assert proc.returncode == 1
        assert calls.read_text().splitlines() == [
            *expected,
            f"{ns} describe job.batch/count-words",
            f"{ns} logs job.batch/count-words",
        ]
        assert "the Job's description" in proc.stderr
        assert "did not complete within 15m" in proc.stderr
        assert not log.exists()


# ------------------------------ (c) cluster lifecycle with the stand-in image ---

PROBE_SNAKEFILE = r"""
# Test-only: what a rule sees of its cluster (the stand-in node has no API server).
rule all:
    input: "probe/cluster.tsv", "probe/group-second.tsv", "probe/plain.tsv"

rule cluster_probe:
    output: "probe/cluster.tsv"
    shell:
        r'''
        test -n "$K8S_CLUSTER_NAME"
        view() {{ kubectl --context "$K8S_CLUSTER_NAME" config view --minify -o jsonpath="$1"; }}
        context=$(view '{{.contexts[0].name}}')
        server=$(view '{{.clusters[0].cluster.server}}')
        podman exec "$K8S_CLUSTER_NAME-control-plane" \
            sh -c 'echo "written in the node" > /app/probe/from-node.txt'
        printf '%s\t%s\t%s\t%s\n' "$K8S_CLUSTER_NAME" "$(kubectl config current-context)" \
            "$context" "$server" > {output}
        '''

rule group_first:
    output: "probe/group-first.tsv"
    group: "pair"
    shell: "printf '%s\n' \"$K8S_CLUSTER_NAME\" > {output}"

rule group_second:
    input: "probe/group-first.tsv"
    output: "probe/group-second.tsv"
    group: "pair"
    shell: "printf '%s\t%s\n' \"$(cat {input})\" \"$K8S_CLUSTER_NAME\" > {output}"

rule plain:
    output: "probe/plain.tsv"
    resources: kind_cluster=0
    shell: "printf '%s\t%s\n' \"${{K8S_CLUSTER_NAME:-none}}\" \"${{KUBECONFIG:-none}}\" > {output}"
"""


@pytest.fixture(scope="module")
def standin_runs(
    slurm: None, kind_ready: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Finished]:
    """The probe workflow with each example's profile, the three runs at the same time.

    Slurm here runs two jobs at a time, so only the mixed-pipeline run (the
    example with a group) probes groups and plain jobs too.
    """
    base = tmp_path_factory.mktemp("standin")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for example in EXAMPLES:
            workdir = base / example.name
            workdir.mkdir()
            (workdir / "Snakefile").write_text(PROBE_SNAKEFILE)
            targets = [] if example.name == "mixed-pipeline" else ["probe/cluster.tsv"]
            argv = [
                sys.executable, "-m", "snakemake", *targets,
                "--workflow-profile", str(example.source / PROFILE),
                "--kindslurm-node-image", kind_ready,
                "--kindslurm-init-seconds-before-status-checks", "1",
            ]  # fmt: skip
            with open(workdir / "snakemake.out", "wb") as out:
                procs[example.name] = subprocess.Popen(
                    argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=clean_env()
                )
        deadline = time.monotonic() + 300
        for proc in procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    finally:
        for proc in procs.values():
            stop(proc)
    return {
        name: Finished(proc.returncode, (base / name / "snakemake.out").read_text(), base / name)
        for name, proc in procs.items()
    }


@pytest.mark.parametrize("example", EXAMPLE_PARAMS)
def test_standin_cluster_lifecycle_with_the_example_profile(
    example: Example, standin_runs: dict[str, Finished]
) -> None:
    done = standin_runs[example.name]
    assert done.returncode == 0, done.output
    probe = done.workdir / "probe"
    name, current, context, server = (probe / "cluster.tsv").read_text().rstrip("\n").split("\t")
    assert re.fullmatch(r"ks-\d+-[a-z0-9]+", name), name
    assert current == context == name  # the private kubeconfig's context is the cluster's name
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", server), server
    assert (probe / "from-node.txt").read_text() == "written in the node\n"

    assert_nothing_left(name)


def test_standin_group_shares_one_cluster_and_plain_jobs_get_none(
    standin_runs: dict[str, Finished],
) -> None:
    probe = standin_runs["mixed-pipeline"].workdir / "probe"
    single = (probe / "cluster.tsv").read_text().split("\t")[0]
    first, second = (probe / "group-second.tsv").read_text().rstrip("\n").split("\t")
    assert first == second, "the rules of one group must share one cluster"
    assert first != single
    assert (probe / "plain.tsv").read_text() == "none\tnone\n"
    assert_nothing_left(first)


# ------------------------------------- realkind: every example end to end ---


def node_containers(runtime: str) -> set[str]:
    """Names of all Kind node containers (docker and podman agree on this format)."""
    proc = subprocess.run(
        [runtime, "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster", "--format", "{{.Names}}"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return set(proc.stdout.split())


@pytest.fixture
def real_node_image() -> str:
    image = os.environ.get("KINDSLURM_NODE_IMAGE", "")
    if not image:
        pytest.skip(REALKIND_REASON)
    return image


def check_sysbench(workdir: Path) -> None:
    rows = (workdir / "results" / "summary.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in rows] == ["threads", "1", "2"]
    assert all(float(row.split("\t")[1]) > 0 for row in rows[1:])
    for threads in (1, 2):
        log = (workdir / "results" / f"cpu-{threads}threads.log").read_text()
        report = (workdir / "results" / f"cpu-{threads}threads.report.txt").read_text()
        assert "events per second" in log
        assert log.strip() == report.strip()  # one through the API, one through /app


def check_pytorch_job(workdir: Path) -> None:
    model = json.loads((workdir / "results" / "model.json").read_text())
    assert abs(model["weight"] - 3.0) < 0.05
    assert "model written to results/model.json" in (workdir / "results" / "train.log").read_text()
    assert "test_mse" in (workdir / "results" / "evaluation.txt").read_text()


def check_mixed_pipeline(workdir: Path) -> None:
    where = {}
    for path in (workdir / "work" / "where").glob("*.tsv"):
        step, _job, cluster = path.read_text().rstrip("\n").split("\t")
        where[step] = cluster
    for step in ("normalize batch", "normalize cluster", "sample_sheet"):
        assert where[step] == "none"
    count_clusters = {where["count_words batch"], where["count_words cluster"]}
    assert len(count_clusters) == 2 and "none" not in count_clusters
    assert where["merge_counts"] == where["top_words"] != "none"
    report = (workdir / "results" / "report.md").read_text()
    assert "3 Kind cluster(s) were created" in report


CHECKS = {
    "sysbench": check_sysbench,
    "pytorch-job": check_pytorch_job,
    "mixed-pipeline": check_mixed_pipeline,
}


@pytest.mark.realkind
@pytest.mark.parametrize("example", EXAMPLE_PARAMS)
def test_example_end_to_end_with_a_real_node_image(
    example: Example, real_node_image: str, slurm: None, tmp_path: Path
) -> None:
    """The whole example, unchanged, on real Kind clusters (hosted CI: one example
    per matrix job via KINDSLURM_EXAMPLES, Docker via KINDSLURM_PROVIDER)."""
    selected = os.environ.get("KINDSLURM_EXAMPLES", "").split()
    if selected and example.name not in selected:
        pytest.skip(f"not in KINDSLURM_EXAMPLES ({' '.join(selected)})")
    provider = os.environ.get("KINDSLURM_PROVIDER", "podman")
    for tool in ("kind", "kubectl", provider):
        if shutil.which(tool) is None:
            missing(f"{tool} not on PATH")
    before = node_containers(provider)
    workdir = copy_example(example.name, tmp_path)
    done = run_example(
        workdir,
        "--kindslurm-node-image", real_node_image,
        "--kindslurm-provider", provider,
        "--kindslurm-keep-successful-logs",
        timeout=2400,
    )  # fmt: skip
    assert done.returncode == 0, done.output
    CHECKS[example.name](workdir)
    left = node_containers(provider) - before
    assert not left, f"node containers left behind: {sorted(left)}"
