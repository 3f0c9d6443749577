"""`kindslurm`: the pure parts of list/gc (clusters.py), up/down/_hold (interactive.py)
and the command line (cli.py), fed with outputs recorded on the test bed
(tests/data/cli/README.md says how each file was made)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
import yaml

from snakemake_executor_plugin_kindslurm import cli, clusters, interactive, process
from snakemake_executor_plugin_kindslurm.clusters import (
    Cluster,
    JobLookup,
    NodeContainer,
    ProcessFacts,
    RecordFile,
    RunnerStatus,
    Verdict,
)
from snakemake_executor_plugin_kindslurm.kind.naming import StateRecord
from snakemake_executor_plugin_kindslurm.slurm.partitions import parse_slurm_time
from snakemake_executor_plugin_kindslurm.slurm.status import (
    JobState,
    build_squeue_jobs_argv,
    parse_sacct,
)
from snakemake_executor_plugin_kindslurm.spec import RunnerSpec

DATA = Path(__file__).parent.parent / "data" / "cli"


def read(name: str) -> str:
    return (DATA / name).read_text()


def record_file(name: str) -> RecordFile:
    return RecordFile(f"/tmp/kindslurm-0/clusters/{name}.json", StateRecord.from_json(read(name)))


REC_4242 = record_file("state-record-ks-4242-kysy0w.json")
REC_4300 = record_file("state-record-ks-4300-7-c3pjmz.json")


# ------------------------------------------------------ runtime listings ---


def test_parse_runtime_ps_keeps_only_kindslurm_nodes() -> None:
    nodes = clusters.parse_runtime_ps(read("podman-ps-kind-all.json"))
    by_cluster = {n.cluster: n for n in nodes}
    assert sorted(by_cluster) == ["ks-118-ydl4v7", "ks-4242-kysy0w", "ks-4300-7-c3pjmz"]
    assert "manual-rec" not in {n.cluster for n in nodes}  # kind's label only: not ours
    node = by_cluster["ks-4300-7-c3pjmz"]
    assert node == NodeContainer(
        name="ks-4300-7-c3pjmz-control-plane",
        cluster="ks-4300-7-c3pjmz",
        user="root",
        slurm_job_id="4300_7",
        created="2026-11-28T10:56:01Z",
        host="vm",
        state="exited",
        role="control-plane",
        api_port=43605,
    )
    assert by_cluster["ks-4242-kysy0w"].state == "running"


def test_parse_runtime_ps_user_filtered_and_empty() -> None:
    nodes = clusters.parse_runtime_ps(read("podman-ps-user-root.json"))
    assert {n.user for n in nodes} == {"root"}
    assert len(nodes) == 3
    assert clusters.parse_runtime_ps(read("podman-ps-empty.json")) == []
    assert clusters.parse_runtime_ps("") == []


def test_parse_runtime_ps_docker_json_lines() -> None:
    (node,) = clusters.parse_runtime_ps(read("docker-ps-constructed.jsonl"))
    assert node.name == "ks-4242-kysy0w-control-plane"
    assert node.user == "alice"
    assert node.api_port == 35283
    assert node.slurm_job_id == "4242"


def test_parse_runtime_ps_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="invalid JSON"):
        clusters.parse_runtime_ps("Error: something\n")


def test_find_foreign_nodes_names_what_is_not_the_users() -> None:
    text = read("podman-ps-kind-all.json")
    assert clusters.find_foreign_nodes(text, "root") == ["manual-rec-control-plane"]
    assert len(clusters.find_foreign_nodes(text, "alice")) == 4


@pytest.mark.parametrize(
    ("user", "argv"),
    [
        pytest.param(
            "alice",
            ["podman", "ps", "-a", "--filter", "label=io.kindslurm.user=alice", "--format", "json"],
            id="one-user",
        ),
        pytest.param(
            None,
            ["podman", "ps", "-a", "--filter", "label=io.kindslurm.cluster", "--format", "json"],
            id="all-users",
        ),
    ],
)
def test_build_list_containers_argv(user: str | None, argv: list[str]) -> None:
    assert clusters.build_list_containers_argv("podman", user) == argv


# ------------------------------------------------------------- joining ---


def test_join_clusters_attaches_records_and_keeps_own_record_only_clusters() -> None:
    nodes = clusters.parse_runtime_ps(read("podman-ps-user-root.json"))
    stale = RecordFile(
        "/tmp/kindslurm-0/clusters/ks-9-nonode.json",
        StateRecord("ks-9-nonode", "9", "root", 0, "vm", "2026-11-28T09:00:00Z", "", "", 5,
                    "podman", "podman"),
    )  # fmt: skip
    other = RecordFile(
        "/tmp/kindslurm-1001/clusters/ks-8-theirs.json",
        StateRecord("ks-8-theirs", "8", "kstest", 1001, "vm", "2026-11-28T09:00:00Z", "", "",
                    6, "podman", "podman"),
    )  # fmt: skip
    joined = clusters.join_clusters(nodes, [REC_4242, REC_4300, stale, other], own_user="root")
    by_name = {c.name: c for c in joined}
    assert sorted(by_name) == ["ks-118-ydl4v7", "ks-4242-kysy0w", "ks-4300-7-c3pjmz", "ks-9-nonode"]
    assert by_name["ks-4300-7-c3pjmz"].record == REC_4300
    assert by_name["ks-118-ydl4v7"].record is None
    assert by_name["ks-9-nonode"].nodes == ()
    assert by_name["ks-4242-kysy0w"].api_port == 35283


def test_join_clusters_ignores_a_record_of_another_user_for_the_same_name() -> None:
    nodes = clusters.parse_runtime_ps(read("podman-ps-user-root.json"))
    theirs = RecordFile(REC_4242.path, StateRecord(**{**vars(REC_4242.record), "user": "bob"}))
    joined = {c.name: c for c in clusters.join_clusters(nodes, [theirs], own_user="root")}
    assert joined["ks-4242-kysy0w"].record is None


def test_read_record_files_skips_records_claiming_another_uid(tmp_path: Path) -> None:
    mine = StateRecord(**{**vars(REC_4242.record), "uid": os.getuid()})
    forged = StateRecord(**{**vars(REC_4300.record), "uid": os.getuid() + 4242})
    (tmp_path / f"{mine.name}.json").write_text(mine.to_json())
    (tmp_path / f"{forged.name}.json").write_text(forged.to_json())
    (tmp_path / "garbage.json").write_text("{")
    found = clusters.read_record_files([tmp_path, tmp_path / "missing"])
    assert found == [RecordFile(str(tmp_path / f"{mine.name}.json"), mine)]
    assert clusters.record_dirs({"XDG_RUNTIME_DIR": "/run/user/7"}, 7, all_users=False) == [
        Path("/run/user/7/kindslurm-7/clusters")
    ]


# ------------------------------------------------------------ processes ---

CREATED = datetime(2026, 11, 28, 10, 56, 1, tzinfo=UTC).timestamp()


def facts(**changes: object) -> ProcessFacts:
    values: dict[str, object] = {
        "pid": 30273,
        "uid": 0,
        "state": "S",
        "cmdline": "/work/main/.venv/bin/python -m snakemake_executor_plugin_kindslurm.runner",
        "start_time": CREATED - 1,
    }
    values.update(changes)
    return ProcessFacts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "host", "process_facts", "status"),
    [
        pytest.param(REC_4300.record, "vm", facts(), RunnerStatus.ALIVE, id="alive"),
        pytest.param(
            REC_4300.record, "vm", facts(cmdline="/usr/bin/python3 /usr/bin/kindslurm run x.sh"),
            RunnerStatus.ALIVE, id="alive-kindslurm-run",
        ),
        pytest.param(None, "vm", facts(), RunnerStatus.UNKNOWN, id="no-record"),
        pytest.param(REC_4300.record, "node2", facts(), RunnerStatus.UNKNOWN, id="other-host"),
        pytest.param(REC_4300.record, "vm", None, RunnerStatus.DEAD, id="no-such-pid"),
        pytest.param(REC_4300.record, "vm", facts(state="Z"), RunnerStatus.DEAD, id="zombie"),
        pytest.param(REC_4300.record, "vm", facts(uid=1001), RunnerStatus.DEAD, id="other-uid"),
        pytest.param(
            REC_4300.record, "vm", facts(cmdline="sleep 100"), RunnerStatus.DEAD, id="pid-reused"
        ),
        pytest.param(
            REC_4300.record, "vm", facts(start_time=CREATED + 60), RunnerStatus.DEAD,
            id="pid-reused-later",
        ),
    ],
)  # fmt: skip
def test_classify_runner(
    record: StateRecord | None, host: str, process_facts: ProcessFacts | None, status: RunnerStatus
) -> None:
    assert clusters.classify_runner(record, host, process_facts) is status


def test_parse_proc_stat_with_odd_command_names() -> None:
    text = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 1 0 0 0 5 6 0 0 20 0 1 0 98765 1 2 3\n"
    assert clusters.parse_proc_stat(text) == ("S", 98765)
    assert clusters.parse_boot_time("cpu 1 2 3\nbtime 1795860000\nprocesses 9\n") == 1795860000.0


def test_gather_process_facts_of_this_process() -> None:
    mine = clusters.gather_process_facts(os.getpid())
    assert mine is not None
    assert mine.uid == os.getuid()
    assert abs(mine.start_time - datetime.now(UTC).timestamp()) < 3600 * 24 * 30
    assert clusters.gather_process_facts(2**22 + 7) is None


# ------------------------------------------------------------ job states ---


def test_job_state_argvs() -> None:
    assert clusters.build_sacct_jobs_argv("sacct", ["121", "120_1"]) == [
        "sacct", "--allocations", "--parsable2", "--noheader",
        "--format=JobID,State,ExitCode", "--jobs=121,120_1",
    ]  # fmt: skip
    assert build_squeue_jobs_argv("squeue", ["177"]) == [
        "squeue", "--noheader", "--states=all", "--jobs=177", "--format=%i|%T|%r",
    ]  # fmt: skip


def result(argv: list[str], code: int, stdout: str = "", stderr: str = "") -> process.CommandResult:
    return process.CommandResult(tuple(argv), code, stdout, stderr, 0.01)


def test_query_job_states_asks_squeue_only_for_what_sacct_missed() -> None:
    sacct = clusters.build_sacct_jobs_argv("sacct", ["112", "177", "120_1"])
    squeue = build_squeue_jobs_argv("squeue", ["177"])
    answers = {
        tuple(sacct): result(sacct, 0, read("sacct-jobs.txt")),
        tuple(squeue): result(squeue, 0, read("squeue-jobs.txt")),
    }
    with mock.patch.object(process, "run", autospec=True) as run:
        run.side_effect = lambda argv, **kw: answers[tuple(argv)]
        lookup = clusters.query_job_states(["120_1", "112", "177"])
    assert [c.args[0] for c in run.call_args_list] == [sacct, squeue]
    assert lookup.answered
    assert lookup.states["112"].state == "CANCELLED"
    assert lookup.states["120_1"].state == "COMPLETED"
    assert lookup.states["177"].state == "PENDING"


def test_query_job_states_unknown_single_id_is_an_answer() -> None:
    sacct = clusters.build_sacct_jobs_argv("sacct", ["99999"])
    squeue = build_squeue_jobs_argv("squeue", ["99999"])
    answers = {
        tuple(sacct): result(sacct, 0, ""),
        tuple(squeue): result(squeue, 1, "", read("squeue-invalid-job.txt")),
    }
    with mock.patch.object(process, "run", autospec=True) as run:
        run.side_effect = lambda argv, **kw: answers[tuple(argv)]
        lookup = clusters.query_job_states(["99999"])
    assert lookup == JobLookup({}, True, "")


def test_query_job_states_without_slurm() -> None:
    with mock.patch.object(process, "run", autospec=True) as run:
        run.side_effect = process.CommandNotFoundError(["sacct"], None, reason="program not found")
        lookup = clusters.query_job_states(["5"])
    assert not lookup.answered
    assert "program not found" in lookup.problem
    assert run.call_count == 2


def test_query_job_states_without_ids_asks_nothing() -> None:
    with mock.patch.object(process, "run", autospec=True) as run:
        assert clusters.query_job_states([]).answered
    run.assert_not_called()


# ------------------------------------------------------------ judgement ---

SACCT = parse_sacct(read("sacct-jobs.txt"))
RUNNING = JobState("177", "RUNNING", "RUNNING")
ANSWERED = JobLookup({**SACCT, "177": RUNNING}, True)
SILENT = JobLookup({}, False, "sacct: not found")


def cluster(
    job: str | None, record: RecordFile | None = REC_4300, state: str = "running"
) -> Cluster:
    node = NodeContainer("ks-x-control-plane", "ks-x", "root", job, "2026-11-28T10:56:01Z",
                         "vm", state)  # fmt: skip
    return Cluster("ks-x", "root", job, "vm", "2026-11-28T10:56:01Z", (node,), record)


@pytest.mark.parametrize(
    ("item", "lookup", "runner", "ended", "verdict", "reason"),
    [
        pytest.param(cluster("112"), ANSWERED, RunnerStatus.ALIVE, (), Verdict.ALIVE,
                     "job 112 is CANCELLED; its runner (pid 30273) is running",
                     id="runner-alive-wins"),
        pytest.param(cluster("177"), ANSWERED, RunnerStatus.DEAD, (), Verdict.ALIVE,
                     "job 177 is RUNNING", id="job-running-runner-killed"),
        pytest.param(cluster("112"), ANSWERED, RunnerStatus.DEAD, (), Verdict.ORPHAN,
                     "job 112 ended: CANCELLED by 0", id="job-cancelled"),
        pytest.param(cluster("122"), ANSWERED, RunnerStatus.UNKNOWN, (), Verdict.ORPHAN,
                     "job 122 ended: FAILED", id="job-failed-no-record"),
        pytest.param(cluster("177"), ANSWERED, RunnerStatus.DEAD, ("177",), Verdict.ORPHAN,
                     "job 177 has ended", id="epilog-job"),
        pytest.param(cluster("99999"), ANSWERED, RunnerStatus.DEAD, (), Verdict.ORPHAN,
                     "job 99999 is unknown to Slurm and its runner (pid 30273) is gone",
                     id="unknown-job-runner-gone"),
        pytest.param(cluster("99999", None), ANSWERED, RunnerStatus.UNKNOWN, (), Verdict.UNKNOWN,
                     "job 99999 is unknown to Slurm and no state record on this node names "
                     "its runner", id="unknown-job-no-record"),
        pytest.param(cluster("99999"), SILENT, RunnerStatus.DEAD, (), Verdict.UNKNOWN,
                     "Slurm could not be asked about job 99999", id="slurm-down"),
        pytest.param(cluster(None), SILENT, RunnerStatus.DEAD, (), Verdict.ORPHAN,
                     "no Slurm job and its runner (pid 30273) is gone", id="local-runner-gone"),
        pytest.param(cluster(None), SILENT, RunnerStatus.ALIVE, (), Verdict.ALIVE,
                     "its runner (pid 30273) is running", id="local-runner-alive"),
        pytest.param(cluster(None, None, "exited"), SILENT, RunnerStatus.UNKNOWN, (),
                     Verdict.ORPHAN, "no Slurm job, no state record, and its nodes are stopped",
                     id="local-stopped-no-record"),
        pytest.param(cluster(None, None), SILENT, RunnerStatus.UNKNOWN, (), Verdict.UNKNOWN,
                     "no Slurm job and no state record on this node names its runner",
                     id="local-running-no-record"),
        pytest.param(cluster("121"), JobLookup({"121": JobState("121", "WEIRD", "WEIRD")}, True),
                     RunnerStatus.DEAD, (), Verdict.UNKNOWN, "job 121 is in state WEIRD",
                     id="unknown-state"),
    ],
)  # fmt: skip
def test_classify_cluster(
    item: Cluster,
    lookup: JobLookup,
    runner: RunnerStatus,
    ended: tuple[str, ...],
    verdict: Verdict,
    reason: str,
) -> None:
    judgement = clusters.classify_cluster(item, lookup, runner, frozenset(ended))
    assert (judgement.verdict, judgement.reason) == (verdict, reason)
    assert judgement.alive is {Verdict.ALIVE: True, Verdict.ORPHAN: False}.get(verdict)


def test_a_cluster_made_through_another_runtime_is_not_taken_for_gone() -> None:
    """A record without visible nodes, made through a Podman service this gc
    does not ask (or the other way round), may still have nodes: unknown."""
    via_service = RecordFile(
        REC_4300.path,
        StateRecord(**{**vars(REC_4300.record), "runtime_service": "unix:///run/p.sock"}),
    )
    nodeless = Cluster("ks-x", "root", "112", "vm", "2026-11-28T10:56:01Z", (), via_service)
    judgement = clusters.classify_cluster(nodeless, ANSWERED, RunnerStatus.DEAD)
    assert judgement.verdict is Verdict.UNKNOWN
    assert "made through CONTAINER_HOST=unix:///run/p.sock" in judgement.reason
    assert "run it again with CONTAINER_HOST=unix:///run/p.sock" in judgement.reason
    # asked through the same service: judged as usual (job 112 was cancelled)
    same = clusters.classify_cluster(
        nodeless, ANSWERED, RunnerStatus.DEAD, runtime_service="unix:///run/p.sock"
    )
    assert same.verdict is Verdict.ORPHAN
    # a local record seen through a service
    local = Cluster("ks-x", "root", "112", "vm", "2026-11-28T10:56:01Z", (), REC_4300)
    other = clusters.classify_cluster(
        local, ANSWERED, RunnerStatus.DEAD, runtime_service="unix:///run/p.sock"
    )
    assert other.verdict is Verdict.UNKNOWN
    assert "made through the local runtime" in other.reason
    assert "CONTAINER_HOST unset" in other.reason
    # nodes visible: whoever sees them may judge them, whatever the record says
    seen = Cluster("ks-x", "root", "112", "vm", "2026-11-28T10:56:01Z",
                   cluster("112").nodes, via_service)  # fmt: skip
    assert clusters.classify_cluster(seen, ANSWERED, RunnerStatus.DEAD).verdict is Verdict.ORPHAN


def test_judge_clusters_reads_the_runner_of_each_record() -> None:
    seen: list[int] = []

    def facts_of(pid: int) -> ProcessFacts | None:
        seen.append(pid)
        return None

    judged = clusters.judge_clusters([cluster("99999"), cluster("5", None)], ANSWERED, "vm",
                                     facts_of)  # fmt: skip
    assert seen == [30273]
    assert [j.judgement.verdict for j in judged] == [Verdict.ORPHAN, Verdict.UNKNOWN]


# --------------------------------------------------------------- output ---


def test_a_pending_answer_after_running_is_not_shown() -> None:
    # Recorded in a `kindslurm up` run: squeue said RUNNING before sacct knew the
    # job, then sacct, a few seconds behind, said PENDING.
    pending = JobState("2737", "PENDING", "PENDING", 0, reason="None")
    assert interactive.is_stale_pending("RUNNING", pending)
    assert not interactive.is_stale_pending("", pending)
    assert not interactive.is_stale_pending("PENDING (Priority)", pending)
    assert not interactive.is_stale_pending("RUNNING", JobState("2737", "REQUEUED", "REQUEUED"))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (-5, "?"), (0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"),
     (3660 + 59, "1h01m"), (86400, "1d"), (90000, "1d1h")],
)  # fmt: skip
def test_format_age(seconds: float | None, text: str) -> None:
    assert clusters.format_age(seconds) == text


def test_list_outputs() -> None:
    now = datetime(2026, 11, 28, 11, 1, 1, tzinfo=UTC)
    item = cluster("112")
    judged = clusters.Judged(item, clusters.classify_cluster(item, ANSWERED, RunnerStatus.DEAD))
    entry = clusters.cluster_to_dict(judged, now)
    assert entry["alive"] is False and entry["orphan"] is True
    assert entry["slurm_job_id"] == "112" and entry["job_state"] == "CANCELLED"
    assert entry["age_seconds"] == 300.0
    assert entry["runner_pid"] == 30273
    assert json.loads(json.dumps(entry)) == entry
    table = clusters.format_cluster_table([judged], now, show_user=False).splitlines()
    assert table[0].split() == ["CLUSTER", "JOB", "JOB", "STATE", "NODE", "AGE", "NODES",
                                "ALIVE", "WHY"]  # fmt: skip
    assert table[1].split()[:8] == ["ks-x", "112", "CANCELLED", "vm", "5m", "1/1", "up", "NO"]
    with_user = clusters.format_cluster_table([judged], now, show_user=True)
    assert with_user.splitlines()[1].split()[1] == "root"


def test_safe_tempdir_only_accepts_the_runners_own_dir(tmp_path: Path) -> None:
    good = tmp_path / "kindslurm-ks-x-abc123"
    good.mkdir()
    other = tmp_path / "important"
    other.mkdir()
    link = tmp_path / "kindslurm-ks-x-link"
    link.symlink_to(other)
    base = StateRecord("ks-x", None, "root", os.getuid(), "vm", "", "", "", 1, "podman", "podman")

    def with_dir(path: Path | str) -> StateRecord:
        return StateRecord(**{**vars(base), "tempdir": str(path)})

    assert clusters.safe_tempdir(with_dir(good)) == good
    assert clusters.safe_tempdir(with_dir(other)) is None
    assert clusters.safe_tempdir(with_dir(link)) is None
    assert clusters.safe_tempdir(with_dir("relative/kindslurm-ks-x-1")) is None
    assert clusters.safe_tempdir(StateRecord(**{**vars(with_dir(good)), "uid": 4242})) is None


# ---------------------------------------------------------- up: submit ---


@pytest.mark.parametrize(
    "tokens",
    [["--partition=short", "--mem", "8G"], ["-p", "short", "--gres=gpu:1"], ["--exclusive"], []],
)
def test_validate_up_sbatch_options_accepts(tokens: list[str]) -> None:
    assert interactive.validate_up_sbatch_options(tokens) == tuple(tokens)


@pytest.mark.parametrize(
    ("tokens", "partition"),
    [([], None), (["--partition=short"], "short"), (["--partition", "gpu"], "gpu"),
     (["-p", "a"], "a"), (["-pb"], "b"), (["-p", "a", "--partition=c"], "c"),
     (["--parsable", "--qos=x"], None), (["-p"], None), (["--partition="], None)],
)  # fmt: skip
def test_partition_option(tokens: list[str], partition: str | None) -> None:
    assert interactive.partition_option(tokens) == partition


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["--wrap=true"], "--wrap"),
        (["--signal", "B:USR1@9"], "--cleanup-grace-seconds"),
        (["-o", "x.log"], "--log-dir"),
        (["--job-name=mine"], "kindslurm-up"),
        (["-J", "mine"], "kindslurm-up"),
        (["--time=5"], "kindslurm up --time"),
        (["-t5"], "kindslurm up --time"),
        (["--array=1-3"], "one cluster"),
        (["--nodes=2"], "one node"),
        (["--comment=a\nb"], "control character"),
    ],
)
def test_validate_up_sbatch_options_refuses(tokens: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        interactive.validate_up_sbatch_options(tokens)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5", 300), ("0:30", 30), ("1:00:00", 3600), ("2-3", 183600), ("2-3:04", 183840),
     ("1-00:00:00", 86400), (read("squeue-time-left.txt"), 180), ("UNLIMITED", None),
     ("NOT_SET", None), ("", None), ("1h", None)],
)  # fmt: skip
def test_parse_slurm_time(text: str, seconds: int | None) -> None:
    assert parse_slurm_time(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "unlimited"), (59, "0:59"), (3599, "59:59"), (3600, "1:00:00"),
     (90061, "1-01:01:01")],
)  # fmt: skip
def test_format_duration(seconds: int | None, text: str) -> None:
    assert interactive.format_duration(seconds) == text


def test_up_argvs() -> None:
    paths = interactive.default_up_paths("/home/a", None, None)
    assert paths == interactive.UpPaths(
        "/home/a/.kindslurm/up/kindslurm-up-%j.log",
        "/home/a/.kindslurm/up/kindslurm-up-%j.ready.json",
        "/home/a/.kube/kindslurm-%j.yaml",
    )
    assert interactive.expand_job_id(paths.kubeconfig, "77") == "/home/a/.kube/kindslurm-77.yaml"
    assert interactive.build_hold_argv("/venv/python", paths) == [
        "/venv/python", "-m", "snakemake_executor_plugin_kindslurm.cli", "_hold",
        "--ready-file", paths.ready, "--kubeconfig", paths.kubeconfig, "--log", paths.log,
    ]  # fmt: skip
    argv = interactive.build_up_sbatch_argv(
        sbatch="sbatch", workdir="/w d", output=paths.log, warning_lead=30, time_limit="3",
        extra=("--partition=short",),
    )  # fmt: skip
    assert argv == [
        "sbatch", "--parsable", "--job-name=kindslurm-up", "--chdir=/w d",
        f"--output={paths.log}", "--nodes=1", "--ntasks=1", "--signal=B:USR1@30", "--time=3",
        "--partition=short",
    ]  # fmt: skip
    # Too short a limit for a warning: none is asked for.
    argv = interactive.build_up_sbatch_argv(
        sbatch="sbatch", workdir="/w", output=paths.log, warning_lead=None, time_limit="1",
    )  # fmt: skip
    assert not any(a.startswith("--signal") for a in argv) and "--time=1" in argv


# ---------------------------------------------------- up: the cluster ---


def test_api_endpoint_from_the_runners_kubeconfig() -> None:
    data = yaml.safe_load(read("kubeconfig-runner.yaml"))
    assert interactive.api_endpoint(data, "ks-4242-kysy0w") == (
        "https://127.0.0.1:35283", "127.0.0.1", 35283,
    )  # fmt: skip
    with pytest.raises(ValueError, match="no context 'nope'"):
        interactive.api_endpoint(data, "nope")


def test_access_commands() -> None:
    assert interactive.build_ssh_forward_argv("node7", "127.0.0.1", 35283) == [
        "ssh", "-N", "-L", "35283:127.0.0.1:35283", "node7",
    ]  # fmt: skip
    assert interactive.build_attach_argv("srun", "77", "ks-77-a", "/h/k.yaml", "/bin/bash") == [
        "srun", "--jobid=77", "--overlap", "--pty", "env", "K8S_CLUSTER_NAME=ks-77-a",
        "KUBECONFIG=/h/k.yaml", "/bin/bash", "-l",
    ]  # fmt: skip


INFO = interactive.ReadyInfo(
    cluster="ks-77-abc123", node="node7", job_id="77", kubeconfig="/home/a/.kube/kindslurm-77.yaml",
    api_server="https://127.0.0.1:35283", api_host="127.0.0.1", api_port=35283,
    end_time="2026-11-28T12:00:00", log="/home/a/.kindslurm/up/kindslurm-up-77.log",
    ready_file="/home/a/.kindslurm/up/kindslurm-up-77.ready.json",
)  # fmt: skip


def test_ready_info_round_trip() -> None:
    assert interactive.ReadyInfo.from_json(INFO.to_json()) == INFO
    with pytest.raises(TypeError):
        interactive.ReadyInfo.from_json('{"cluster": "x"}')


@pytest.mark.parametrize(
    ("left", "known", "lead", "phrase"),
    [(598, True, 60, "9:58 left, and kindslurm deletes it 60-120 s before the time limit"),
     (50, True, None, "0:50 left, and kindslurm deletes it at the time limit"),
     (None, True, 60, "no time limit"), (None, False, 60, "until its Slurm job")],
)  # fmt: skip
def test_format_ready_message(left: int | None, known: bool, lead: int | None, phrase: str) -> None:
    text = interactive.format_ready_message(
        INFO, time_left=left, time_known=known, warning_lead=lead, login_shell="/bin/bash"
    )
    assert "Cluster ks-77-abc123 is ready (Slurm job 77 on node node7)." in text
    assert phrase in text
    assert "  ssh -N -L 35283:127.0.0.1:35283 node7 &" in text
    assert "  export KUBECONFIG=/home/a/.kube/kindslurm-77.yaml" in text
    assert "srun --jobid=77 --overlap --pty env K8S_CLUSTER_NAME=ks-77-abc123" in text
    assert "kindslurm down 77" in text


def test_kubeconfig_header_is_a_yaml_comment() -> None:
    header = interactive.kubeconfig_header("ks-77-abc123", "77", "node7", "127.0.0.1", 35283)
    assert all(line.startswith("#") for line in header.splitlines())
    assert "ssh -N -L 35283:127.0.0.1:35283 node7" in header


# ------------------------------------------------------------ up: hold ---


def hold_env(tmp_path: Path) -> dict[str, str]:
    private = tmp_path / "private" / "kubeconfig"
    private.parent.mkdir()
    private.write_text(read("kubeconfig-runner.yaml"))
    return {
        "K8S_CLUSTER_NAME": "ks-4242-kysy0w",
        "KUBECONFIG": str(private),
        "SLURM_JOB_ID": "4242",
    }


def test_hold_publishes_until_a_signal_then_unpublishes(tmp_path: Path) -> None:
    ready = tmp_path / "up" / "kindslurm-up-%j.ready.json"
    kubeconfig = tmp_path / "home" / ".kube" / "kindslurm-%j.yaml"
    logged: list[str] = []
    seen: dict[str, object] = {}

    def sleep(seconds: float) -> None:
        # While holding, everything is published: look, then stop like the runner does.
        info = interactive.ReadyInfo.from_json(
            (tmp_path / "up/kindslurm-up-4242.ready.json").read_text()
        )
        published = Path(info.kubeconfig)
        seen["info"] = info
        seen["mode"] = stat.S_IMODE(published.stat().st_mode)
        seen["dir_mode"] = stat.S_IMODE(published.parent.stat().st_mode)
        seen["kubeconfig"] = published.read_text()
        seen["name"] = (tmp_path / "name-4242").read_text()
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    code = interactive.hold(
        ready_template=str(ready),
        kubeconfig_template=str(kubeconfig),
        log_template="/logs/kindslurm-up-%j.log",
        name_file_template=str(tmp_path / "name-%j"),
        environ=hold_env(tmp_path),
        end_time=lambda job: "2026-11-28T12:00:00",
        log=logged.append,
        sleep=sleep,
    )
    assert code == 0
    info = seen["info"]
    assert isinstance(info, interactive.ReadyInfo)
    assert (info.cluster, info.job_id, info.api_port) == ("ks-4242-kysy0w", "4242", 35283)
    assert info.kubeconfig == str(tmp_path / "home/.kube/kindslurm-4242.yaml")
    assert info.log == "/logs/kindslurm-up-4242.log"
    assert info.end_time == "2026-11-28T12:00:00"
    assert seen["mode"] == 0o600 and seen["dir_mode"] == 0o700
    text = str(seen["kubeconfig"])
    assert text.startswith("# kindslurm: Kind cluster ks-4242-kysy0w of Slurm job 4242")
    data = yaml.safe_load(text)
    assert data["current-context"] == "ks-4242-kysy0w"
    assert data["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:35283"
    assert seen["name"] == "ks-4242-kysy0w\n"
    # Unpublished on the way out; the handlers are ours no more.
    assert not list((tmp_path / "up").iterdir())
    assert not list((tmp_path / "home/.kube").iterdir())
    assert not (tmp_path / "name-4242").exists()
    assert signal.getsignal(signal.SIGTERM) == before
    assert "received SIGTERM" in logged[-1]


def test_hold_fails_cleanly_without_a_kubeconfig(tmp_path: Path) -> None:
    env = hold_env(tmp_path)
    Path(env["KUBECONFIG"]).unlink()
    logged: list[str] = []
    code = interactive.hold(
        ready_template=str(tmp_path / "ready-%j.json"),
        kubeconfig_template=str(tmp_path / "kc-%j.yaml"),
        log_template=None,
        name_file_template=None,
        environ=env,
        end_time=lambda job: None,
        log=logged.append,
        sleep=lambda s: pytest.fail("must not hold"),
    )
    assert code == 1
    assert "cannot publish the cluster" in logged[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["private"]


# ----------------------------------------------------------------- down ---


@pytest.mark.parametrize(
    ("name", "job"),
    [("ks-4242-kysy0w", "4242"), ("ks-4300-7-c3pjmz", "4300_7"), ("ks-local-abc123", None),
     ("manual-rec", None)],
)  # fmt: skip
def test_job_id_from_cluster_name(name: str, job: str | None) -> None:
    assert interactive.job_id_from_cluster_name(name) == job


def test_classify_cleanup_log() -> None:
    log = read("up-job-cancelled.log")
    assert interactive.classify_cleanup_log(log, "ks-141-qs9lcm") == "deleted"
    assert interactive.classify_cleanup_log(log, "ks-1-other") is None
    assert interactive.classify_cleanup_log(read("up-job-preflight-failed.log"), "x") is None
    # runner.py's wording when the cleanup failed
    left = "[kindslurm 2026-11-28T11:00:30+00:00] delete: cluster ks-9-a may be left behind; first"
    assert interactive.classify_cleanup_log(left, "ks-9-a") == "left"


@pytest.mark.parametrize(
    ("environ", "parent", "position"),
    [
        ({}, "bash", "none"),
        ({"SLURM_JOB_ID": "115"}, "slurmstepd: [115.batch]", "batch-shell"),
        ({"SLURM_JOB_ID": "115"}, "/bin/sh /var/lib/kindslurm-testbed/slurmd/job00115/slurm_script",
         "under-batch-shell"),
        ({"SLURM_JOB_ID": "116", "SLURM_STEP_ID": "0"}, "slurmstepd: [116.0]", "step"),
        ({"SLURM_JOB_ID": "117"}, "bash", "none"),
    ],
)  # fmt: skip
def test_classify_batch_position(environ: dict[str, str], parent: str, position: str) -> None:
    assert interactive.classify_batch_position(environ, parent) == position


# ------------------------------------------------------------------ cli ---


@pytest.mark.parametrize("command", [[], ["run"], ["up"], ["down"], ["list"], ["gc"], ["doctor"]])
def test_every_command_has_help_with_the_exit_codes(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "117" in out and "usage error" in out
    assert "_hold" not in out


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "/nonexistent/workload.sh"],
        ["run", "--kind-config", "/nonexistent.yaml", "true"],
        ["up", "--", "--wrap=true"],
        ["up", "--time", "2x"],
        ["up", "--partition=short"],
        ["down", "Not_A_Name!"],
        ["list", "--bogus"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == cli.EXIT_USAGE
    assert "error" in capsys.readouterr().err


def test_script_argv(tmp_path: Path) -> None:
    executable = tmp_path / "exe.sh"
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    plain = tmp_path / "plain.sh"
    plain.write_text("exit 0\n")
    assert cli.script_argv(str(executable), ["a"]) == [str(executable), "a"]
    assert cli.script_argv(str(plain), ["a", "b"]) == ["/bin/sh", str(plain), "a", "b"]
    assert cli.script_argv("true", []) == [shutil.which("true")]
    for bad in (str(tmp_path), str(tmp_path / "missing.sh")):
        with pytest.raises(cli.CliError) as error:
            cli.script_argv(bad, [])
        assert error.value.code == cli.EXIT_USAGE


def test_options_map_to_the_runner_spec(tmp_path: Path) -> None:
    config = tmp_path / "kind.yaml"
    config.write_text("kind: Cluster\n")
    args = cli.build_parser().parse_args(
        ["run", "--node-image", "img:1", "--kind-config", str(config), "--provider", "docker",
         "--kind-path", "/k/kind", "--kubectl-path", "/k/kubectl", "--create-timeout", "99",
         "--keep-cluster-on-failure", "--create-lock", "--skip-preflight",
         "--preload-images", "a.tar, localhost/b:1", "x.sh", "--flag"]
    )  # fmt: skip
    spec = cli.spec_from_args(args, "/work", "/logs")
    assert spec == RunnerSpec(
        cluster=True, workdir="/work", node_image="img:1", kind_config=str(config),
        provider="docker", kind_bin="/k/kind", kubectl_bin="/k/kubectl", runtime_bin="docker",
        create_timeout=99.0, keep_on_failure=True, log_dir="/logs", create_lock=True,
        preflight=False, preload_images=(os.path.abspath("a.tar"), "localhost/b:1"),
    )  # fmt: skip
    assert args.args == ["--flag"]
    defaults = cli.spec_from_args(cli.build_parser().parse_args(["doctor"]), "/w", "/w")
    assert (defaults.provider, defaults.runtime_bin, defaults.create_timeout) == (
        "podman", "podman", 300.0,
    )  # fmt: skip


def test_ci_setup_runs_the_packaged_test_bed_scripts_in_order() -> None:
    from pathlib import Path

    from snakemake_executor_plugin_kindslurm.cli import TESTBED, build_ci_setup_steps

    steps = build_ci_setup_steps(Path("/tb"), users=["ci"], kind=False, standin_image=True)
    assert steps == [
        ["bash", "/tb/slurm.sh", "install"],
        ["bash", "/tb/slurm.sh", "start"],
        ["bash", "/tb/slurm.sh", "add-user", "ci"],
        ["bash", "/tb/kind.sh", "install"],
        ["bash", "/tb/kind.sh", "build-standin-image"],
    ]
    assert build_ci_setup_steps(Path("/tb"), users=[], kind=False, standin_image=False) == [
        ["bash", "/tb/slurm.sh", "install"],
        ["bash", "/tb/slurm.sh", "start"],
    ]
    # The shared Podman service lets the --user users run kind through its socket.
    steps = build_ci_setup_steps(
        Path("/tb"), users=["a", "b"], kind=False, standin_image=False, podman_service=True
    )
    assert steps[-2:] == [
        ["bash", "/tb/kind.sh", "install"],
        ["bash", "/tb/kind.sh", "start-podman-service", "--user", "a", "--user", "b"],
    ]
    # The same scripts the test suite uses ship inside the package.
    assert (TESTBED / "slurm.sh").is_file() and (TESTBED / "kind.sh").is_file()


def test_runtime_host_option_reaches_every_command_through_the_environment(monkeypatch):
    from snakemake_executor_plugin_kindslurm import cli

    # setenv records the variable's state, so the test's own change is undone too
    monkeypatch.setenv("CONTAINER_HOST", "unix:///before.sock")
    seen = {}

    def fake_doctor(args):
        seen["env"] = os.environ.get("CONTAINER_HOST")
        return 0

    monkeypatch.setattr(cli, "cmd_doctor", fake_doctor)  # main() builds its parser anew
    assert cli.main(["doctor", "--runtime-host", "unix:///run/p.sock"]) == 0
    assert seen["env"] == "unix:///run/p.sock"
    with pytest.raises(SystemExit) as usage:
        cli.main(["doctor", "--runtime-host", "/run/p.sock"])
    assert usage.value.code == 2
