"""The executor against the real single-node Slurm (plain jobs: kind_cluster=0)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .workflows import (
    run_snakemake,
    snakemake_argv,
    squeue_jobs,
    wait_until,
    write_workflow,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("slurm")]

PLAIN = "resources: kind_cluster=0\n"


def test_twenty_plain_jobs_produce_correct_outputs(tmp_path: Path) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: expand("out/{i}.txt", i=range(20))

        rule make:
            output: "out/{i}.txt"
            resources: kind_cluster=0, mem_mb=500, runtime=5
            shell: "echo job-{wildcards.i} $SLURM_JOB_ID > {output}"
        """,
    )
    done = run_snakemake(wd, "--kindslurm-keep-successful-logs")
    assert done.returncode == 0, done.output
    for i in range(20):
        words = (wd / "out" / f"{i}.txt").read_text().split()
        assert words[0] == f"job-{i}"
        assert words[1].isdigit(), "the rule did not run inside a Slurm job"
    assert len({(wd / "out" / f"{i}.txt").read_text().split()[1] for i in range(20)}) == 20
    logs = list((wd / ".snakemake" / "kindslurm_logs" / "rule_make").rglob("*.log"))
    assert len(logs) == 20


def test_successful_logs_are_removed_by_default(tmp_path: Path) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        f"""
        rule a:
            output: "a.txt"
            {PLAIN}
            shell: "echo hi > {{output}}"
        """,
    )
    done = run_snakemake(wd)
    assert done.returncode == 0, done.output
    assert not list((wd / ".snakemake" / "kindslurm_logs").rglob("*.log"))


def test_failing_rule_is_reported_with_state_exit_code_and_log(tmp_path: Path) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule bad:
            output: "bad.txt"
            resources: kind_cluster=0
            shell: "echo about-to-fail >&2; exit 3"
        """,
    )
    done = run_snakemake(wd)
    assert done.returncode != 0
    # The rule's shell exits 3; Snakemake inside the job then exits 1.
    assert "ended with state FAILED (exit code 1:0)" in done.output, done.output
    logs = list((wd / ".snakemake" / "kindslurm_logs" / "rule_bad").glob("*.log"))
    assert len(logs) == 1, "the failed job's log must be kept"
    assert str(logs[0]) in done.output
    assert "about-to-fail" in logs[0].read_text()


def test_job_slurm_can_never_start_fails_fast_instead_of_hanging(tmp_path: Path) -> None:
    """8 threads on a node with 2 CPUs: Slurm keeps such a job PENDING with
    reason PartitionConfig forever. The executor cancels it and says why."""
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: "big.txt", "small.txt"

        rule big:
            output: "big.txt"
            threads: 8
            resources: kind_cluster=0
            shell: "touch {output}"

        rule small:
            output: "small.txt"
            resources: kind_cluster=0
            shell: "touch {output}"
        """,
    )
    started = time.monotonic()
    done = run_snakemake(wd, "--cores", "8", "--keep-going", timeout=300)
    assert done.returncode != 0, done.output
    assert time.monotonic() - started < 240  # a generous bound; it used to hang forever
    assert "will never start job" in done.output, done.output
    assert "PartitionConfig" in done.output and "kindslurm cancelled it" in done.output
    assert (wd / "small.txt").exists()  # the rest of the workflow still ran
    assert not (wd / "big.txt").exists()
    run_name = done.run_name
    assert run_name is not None
    assert squeue_jobs(run_name) == []  # cancelled, not left pending


def test_held_job_is_waited_for_not_given_up(tmp_path: Path) -> None:
    """sacct does not list a held job (nor one whose --begin is ahead); squeue
    does. Past the missing-job timeout the executor must ask squeue, keep
    waiting, and finish the job once it is released."""
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule held:
            output: "held.txt"
            resources: kind_cluster=0, slurm_extra="--hold"
            shell: "touch {output}"
        """,
    )
    proc = subprocess.Popen(
        snakemake_argv(wd, "--kindslurm-missing-job-timeout", "5"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=wd,
    )  # fmt: skip
    job = None
    try:

        def held_job() -> str | None:
            listing = subprocess.run(
                ["squeue", "--noheader", "--states=PENDING", "--format=%i|%r|%Z"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
            for line in listing.splitlines():
                jobid, reason, workdir = line.split("|", 2)
                if workdir == str(wd) and reason == "JobHeldUser":
                    return jobid
            return None

        assert wait_until(lambda: held_job() is not None, 60), "the job was not held"
        job = held_job()
        time.sleep(15)  # three missing-job timeouts without a word from sacct
        assert proc.poll() is None, proc.communicate()[0]
        subprocess.run(["scontrol", "release", str(job)], check=True, timeout=30)
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output
        assert (wd / "held.txt").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        if job:
            subprocess.run(["scancel", job], capture_output=True, timeout=30)


HOSTILE = [
    "with space",
    "it's",
    'double"quote',
    "semi;colon",
    "$(touch PWNED)",
    "`touch PWNED2`",
    "$HOME",
    "it's $(touch PWNED3)",
]


def test_hostile_wildcards_reach_the_job_verbatim(tmp_path: Path) -> None:
    wd = tmp_path / "wf"
    wd.mkdir()
    (wd / "values.txt").write_text("\n".join(HOSTILE) + "\n")
    write_workflow(
        wd,
        """
        VALUES = [l for l in open("values.txt").read().split("\\n") if l]
        wildcard_constraints:
            v=".+"

        rule all:
            input: expand("out/{v}.txt", v=VALUES)

        rule echo:
            output: "out/{v}.txt"
            resources: kind_cluster=0
            shell: "printf '%s' {wildcards.v:q} > {output:q}"
        """,
    )
    done = run_snakemake(wd)
    assert done.returncode == 0, done.output
    for value in HOSTILE:
        assert (wd / "out" / f"{value}.txt").read_text() == value
    for marker in ("PWNED", "PWNED2", "PWNED3"):
        assert not (wd / marker).exists()
        assert not (Path.cwd() / marker).exists()


def test_ctrl_c_cancels_every_job_quickly(tmp_path: Path) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: expand("s{i}.txt", i=range(3))

        rule sleep:
            output: "s{i}.txt"
            resources: kind_cluster=0
            shell: "sleep 300; touch {output}"
        """,
    )
    proc = subprocess.Popen(
        snakemake_argv(wd),
        cwd=wd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    run_name = None
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        submitted = 0
        while time.monotonic() < deadline and submitted < 3:
            line = proc.stdout.readline()
            output.append(line)
            if "jobs of this run are named" in line:
                run_name = line.split("named", 1)[1].split(";")[0].strip()
            if "as Slurm job" in line:
                submitted += 1
        assert run_name and submitted == 3, "".join(output)
        assert wait_until(lambda: len(squeue_jobs(run_name)) == 3, 30)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        elapsed = time.monotonic() - sent
        output.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if run_name:
            subprocess.run(["scancel", f"--name={run_name}"], check=False)
    assert proc.returncode != 0
    assert "cancelled Slurm jobs" in "".join(output), "".join(output)
    assert wait_until(lambda: squeue_jobs(run_name) == [], 60), squeue_jobs(run_name)
    # Generous bound: the point is "not at the next 180 s status check".
    assert elapsed < 30, f"snakemake took {elapsed:.1f} s to exit after Ctrl-C"


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        pytest.param('slurm_partition="nope"', "invalid partition", id="unknown-partition"),
        pytest.param('slurm_account="nosuchaccount"', "account", id="unknown-account"),
        pytest.param('slurm_extra="--job-name=x"', "--job-name is not allowed", id="forbidden"),
        pytest.param('slurm_extra="stray"', "is not an sbatch option", id="malformed"),
        pytest.param("nodes=2", "single node", id="nodes"),
        pytest.param('runtime="soon"', "runtime", id="non-numeric"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(
    tmp_path: Path, resources: str, message: str
) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        f"""
        rule r:
            output: "r.txt"
            resources: kind_cluster=0, {resources}
            shell: "touch {{output}}"
        """,
    )
    done = run_snakemake(wd, timeout=120)
    assert done.returncode != 0
    assert message in done.output, done.output
    assert not (wd / "r.txt").exists()
    assert "as Slurm job" not in done.output


def test_missing_sbatch_is_a_clear_error(tmp_path: Path) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule r:
            output: "r.txt"
            resources: kind_cluster=0
            shell: "touch {output}"
        """,
    )
    # A PATH with the shells Snakemake needs but no Slurm tools.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "bash", "env"):
        (bindir / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(bindir)}
    done = run_snakemake(wd, env=env, timeout=120)
    assert done.returncode != 0
    assert "sbatch is not on PATH" in done.output, done.output


def test_workflow_started_inside_an_allocation_submits_cleanly(tmp_path: Path) -> None:
    wd = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: "a.txt", "b.txt"

        rule make:
            output: "{x}.txt"
            resources: kind_cluster=0, mem_mb=400
            shell: "echo $SLURM_JOB_ID $SLURM_MEM_PER_NODE > {output}"
        """,
    )
    argv = snakemake_argv(wd, jobs=2)
    # The outer job sets SLURM_* (and a bogus SBATCH_ default) that must not leak into
    # the inner sbatch calls.
    outer_name = f"kindslurm-outer-{tmp_path.name}"
    try:
        proc = subprocess.run(
            [
                "sbatch",
                "--wait",
                "--parsable",
                "--mem=600M",
                "--cpus-per-task=1",
                f"--job-name={outer_name}",
                f"--output={tmp_path}/outer.log",
                f"--chdir={wd}",
                "--export=ALL,SBATCH_TIMELIMIT=bogus",
            ],
            input="#!/bin/sh\nexec " + " ".join(f"'{a}'" for a in argv) + "\n",
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        # Never leave the outer job (and the workflow in it) running after a failure.
        subprocess.run(["scancel", f"--name={outer_name}"], check=False)
    outer_log = (tmp_path / "outer.log").read_text()
    assert proc.returncode == 0, outer_log + proc.stderr
    outer_id = proc.stdout.strip().split(";")[0]
    for name in ("a", "b"):
        inner_id, mem = (wd / f"{name}.txt").read_text().split()
        assert inner_id != outer_id
        assert mem == "382"  # Snakemake turns mem_mb=400 into mem_mib=382; Slurm counts MiB


def test_non_root_user_runs_a_workflow(tmp_path: Path) -> None:
    """A regular user (testbed add-user kstest) submits, is tracked by sacct and
    gets correct outputs; the run needs nothing from root."""
    import pwd

    from ..conftest import missing

    try:
        user = pwd.getpwnam("kstest")
    except KeyError:
        missing("Linux user kstest (testbed/slurm.sh add-user kstest)")
    python = Path(sys.executable)
    probe = subprocess.run(
        [
            "runuser",
            "-u",
            "kstest",
            "--",
            str(python),
            "-c",
            "import snakemake_executor_plugin_kindslurm, snakemake",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        missing(f"a Python environment readable by kstest ({python}): {probe.stderr.strip()}")
    wd = Path(tempfile.mkdtemp(prefix="kindslurm-kstest-", dir="/tmp"))
    try:
        write_workflow(
            wd,
            """
            rule all:
                input: expand("out/{i}.txt", i=range(3))

            rule make:
                output: "out/{i}.txt"
                resources: kind_cluster=0
                shell: "id -un > {output}; echo $SLURM_JOB_ID >> {output}"
            """,
        )
        shutil.chown(wd, user.pw_uid, user.pw_gid)
        for path in wd.rglob("*"):
            shutil.chown(path, user.pw_uid, user.pw_gid)
        proc = subprocess.run(
            ["runuser", "-u", "kstest", "--", "env", f"HOME={user.pw_dir}", *snakemake_argv(wd)],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=wd,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        jobids = set()
        for i in range(3):
            who, jobid = (wd / "out" / f"{i}.txt").read_text().split()
            assert who == "kstest"
            jobids.add(jobid)
        assert len(jobids) == 3
        acct = subprocess.run(
            [
                "sacct",
                "--allusers",
                "--noheader",
                "--parsable2",
                "--allocations",
                "--format=User,State",
                f"--jobs={','.join(sorted(jobids))}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        assert acct == ["kstest|COMPLETED"] * 3, acct
    finally:
        shutil.rmtree(wd, ignore_errors=True)
