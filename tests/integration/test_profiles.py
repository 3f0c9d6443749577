"""Snakemake profiles drive every kindslurm setting.

Settings are read back through Snakemake's own argument parser and plugin
registry (what `snakemake` does before it builds the executor), and their
effects are checked on the real single-node Slurm with plain
(`kind_cluster=0`) jobs: where the logs go, extra sbatch options, the status
command, and the runner spec the job received.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from snakemake_executor_plugin_kindslurm.settings import ExecutorSettings

from .workflows import RUN_NAME, Finished, write_workflow

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS_PROFILE = ROOT / "docs" / "profile"
FIELDS = {f.name: f for f in dataclasses.fields(ExecutorSettings)}

# Prints the ExecutorSettings Snakemake builds from its command line (profiles
# included) as JSON.
SETTINGS_PROBE = """
import dataclasses, json, sys
from snakemake.cli import parse_args
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
_, args = parse_args(sys.argv[1:])
settings = ExecutorPluginRegistry().get_plugin(args.executor).get_settings(args)
print(json.dumps(dataclasses.asdict(settings)))
"""

KIND_CONFIG = """\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
"""

PROBE_RULE = """
rule probe:
    output: "probe/scontrol.txt", "probe/script.txt", "probe/docker_host.txt"
    resources: kind_cluster=0, mem_mb=200, runtime=5
    shell:
        "scontrol show job $SLURM_JOB_ID > {output[0]} && "
        "scontrol write batch_script $SLURM_JOB_ID - > {output[1]} && "
        "echo ${{DOCKER_HOST:-unset}} > {output[2]}"
"""


def non_default_settings(workdir: Path) -> dict[str, Any]:
    """A value other than the default for every setting."""
    return {
        "node_image": "localhost/kindslurm-node:from-profile",
        "kind_config": str(workdir / "kind" / "profile.yaml"),
        "provider": "docker",
        "kind_path": "/opt/kindslurm/bin/kind",
        "kubectl_path": "/opt/kindslurm/bin/kubectl",
        "runtime_path": "/opt/kindslurm/bin/docker",
        # provider docker: the jobs get it as DOCKER_HOST
        "runtime_host": "unix:///run/kindslurm-profile/docker.sock",
        "create_timeout": 123,
        "keep_cluster_on_failure": True,
        "preload_images": "images/a.tar,localhost/b:1",
        "create_lock": True,
        "skip_preflight": True,
        # Above the probe rule's mem_mb=200: Slurm gets this instead.
        "min_mem_mb": 400,
        "logdir": "profile-logs",
        "keep_successful_logs": True,
        "init_seconds_before_status_checks": 0.5,
        # Small, so squeue sees each job in the few seconds (MinJobAge) Slurm
        # lists it after it ended.
        "max_status_interval": 2.0,
        "status_command": "squeue",
        "missing_job_timeout": 90.0,
        # 36 s: the runner gets min(10, 36/4) = 9 s to stop the workload and
        # 36/2 = 18 s to delete the cluster.
        "cleanup_grace_seconds": 36,
        "sbatch_extra": "--nice=7",
    }


def key(name: str) -> str:
    return "kindslurm-" + name.replace("_", "-")


def write_profile(directory: Path, settings: dict[str, Any], **options: Any) -> Path:
    profile = {**options, **{key(name): value for name, value in settings.items()}}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return directory


def prepare(workdir: Path, snakefile: str) -> Path:
    write_workflow(workdir, snakefile, {"kind/profile.yaml": KIND_CONFIG})
    return workdir


def parsed_settings(workdir: Path, *argv: str) -> dict[str, Any]:
    """The ExecutorSettings Snakemake builds for `snakemake ARGV` in workdir."""
    proc = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE, *argv],
        capture_output=True, text=True, timeout=120, cwd=workdir,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def cancel_run(output: str) -> None:
    match = RUN_NAME.search(output)
    if match:
        subprocess.run(["scancel", f"--name={match.group(1)}"], timeout=60, check=False)


def run_with_profile(workdir: Path, profile: Path, *extra: str) -> Finished:
    """`snakemake --profile PROFILE` with nothing else about the executor on the
    command line but `extra`."""
    argv = [
        sys.executable, "-m", "snakemake", "--profile", str(profile),
        "--directory", str(workdir), "--snakefile", str(workdir / "Snakefile"),
        "--latency-wait", "10", *extra,
    ]  # fmt: skip
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=workdir)
    except subprocess.TimeoutExpired as err:
        cancel_run(str(err.stdout or "") + str(err.stderr or ""))
        raise
    return Finished(proc.returncode, proc.stdout + proc.stderr, workdir)


def runner_spec(batch_script: str) -> dict[str, Any]:
    """The RunnerSpec JSON on the `exec` line of the job script Slurm ran."""
    line = next(line for line in batch_script.splitlines() if line.startswith("exec "))
    argv = shlex.split(line)
    spec: dict[str, Any] = json.loads(argv[argv.index("--spec") + 1])
    return spec


def job_logs(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.log")) if directory.exists() else []


# ------------------------------------------------------------------ parse ---


def test_every_setting_can_be_set_from_a_profile(tmp_path: Path) -> None:
    workdir = prepare(tmp_path / "wf", PROBE_RULE)
    wanted = non_default_settings(workdir)
    assert set(wanted) == set(FIELDS), "give every setting a non-default value here"
    for name, value in wanted.items():
        assert value != FIELDS[name].default, f"{name}: pick a value other than the default"
    profile = write_profile(tmp_path / "profile", wanted, executor="kindslurm")
    assert parsed_settings(workdir, "--profile", str(profile), "-n") == wanted


def test_command_line_overrides_the_profile_value(tmp_path: Path) -> None:
    workdir = prepare(tmp_path / "wf", PROBE_RULE)
    profile = write_profile(tmp_path / "profile", non_default_settings(workdir),
                            executor="kindslurm")  # fmt: skip
    overrides = {
        "logdir": "cli-logs",
        "create_timeout": 77,
        "max_status_interval": 5.5,
        "status_command": "sacct",
        "sbatch_extra": "--nice=3",
    }
    # `--flag=value`: an sbatch-extra value starts with a dash, which argparse
    # would take for the next option after a space.
    argv = [f"--{key(name)}={value}" for name, value in overrides.items()]
    settings = parsed_settings(workdir, "--profile", str(profile), "-n", *argv)
    expected = {**non_default_settings(workdir), **overrides}
    assert settings == expected


def test_the_documented_profile_is_accepted_and_holds_the_defaults(tmp_path: Path) -> None:
    workdir = write_workflow(
        tmp_path / "wf",
        """
        rule all:
            input: "data/raw.txt", "model/model.txt"

        rule prepare_data:
            output: "data/raw.txt"
            shell: "echo raw > {output}"

        rule train_model:
            input: "data/raw.txt"
            output: "model/model.txt"
            shell: "cp {input} {output}"
        """,
    )
    defaults = dataclasses.asdict(ExecutorSettings())
    assert parsed_settings(workdir, "--profile", str(DOCS_PROFILE), "-n") == defaults
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(DOCS_PROFILE), "-n"],
        capture_output=True, text=True, timeout=120, cwd=workdir,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    resources = dict(re.findall(r"rule (\w+):.*?resources: ([^\n]*)", output, re.S))
    assert "kind_cluster=0" in resources["prepare_data"], resources
    assert "mem_mb=1000" in resources["prepare_data"], resources
    assert "kind_cluster=1" in resources["train_model"], resources
    assert "mem_mb=16000" in resources["train_model"], resources
    assert "runtime=240" in resources["train_model"], resources


# ------------------------------------------------------------------ Slurm ---


@pytest.mark.usefixtures("slurm")
def test_profile_settings_take_effect_on_slurm(tmp_path: Path) -> None:
    workdir = prepare(tmp_path / "wf", PROBE_RULE)
    settings = non_default_settings(workdir)
    profile = write_profile(tmp_path / "profile", settings,
                            executor="kindslurm", jobs=1, verbose=True)  # fmt: skip
    done = run_with_profile(workdir, profile)
    assert done.returncode == 0, done.output

    # logdir + keep-successful-logs: the log of the successful job is kept there.
    logs = job_logs(workdir / "profile-logs" / "rule_probe")
    assert len(logs) == 1, done.output
    assert not job_logs(workdir / ".snakemake" / "kindslurm_logs")
    jobid = logs[0].stem

    # sbatch-extra reached Slurm; cleanup-grace-seconds reached sbatch.
    scontrol = (workdir / "probe" / "scontrol.txt").read_text()
    assert f"JobId={jobid} " in scontrol
    assert re.search(r"\bNice=7\b", scontrol), scontrol
    # min-mem-mb raised the rule's 200 MB to its floor.
    assert re.search(r"\bMinMemoryNode=400M\b", scontrol), scontrol
    sbatch_lines = [line for line in done.output.splitlines() if "sbatch --parsable" in line]
    assert sbatch_lines and "--signal=B:USR1@36" in sbatch_lines[0], sbatch_lines

    # status-command squeue: every status query went to squeue.
    assert "squeue --noheader --states=all --name=kindslurm-" in done.output
    assert not re.search(r"\bsacct --allocations\b", done.output)

    # The cluster settings reached the runner inside the job.
    spec = runner_spec((workdir / "probe" / "script.txt").read_text())
    assert spec["cluster"] is False
    assert spec["log_dir"] == str(workdir / "profile-logs" / "rule_probe")
    assert {
        "node_image": spec["node_image"],
        "kind_config": spec["kind_config"],
        "provider": spec["provider"],
        "kind_path": spec["kind_bin"],
        "kubectl_path": spec["kubectl_bin"],
        "runtime_path": spec["runtime_bin"],
        "create_timeout": spec["create_timeout"],
        "keep_cluster_on_failure": spec["keep_on_failure"],
        "create_lock": spec["create_lock"],
        "skip_preflight": not spec["preflight"],
    } == {
        name: settings[name]
        for name in ("node_image", "kind_config", "provider", "kind_path", "kubectl_path",
                     "runtime_path", "create_timeout", "keep_cluster_on_failure",
                     "create_lock", "skip_preflight")
    }  # fmt: skip
    assert spec["preload_images"] == [str(workdir / "images" / "a.tar"), "localhost/b:1"]
    assert (spec["workload_term_timeout"], spec["delete_timeout"]) == (9.0, 18.0)
    # runtime-host reached the job's environment as the provider's variable.
    docker_host = (workdir / "probe" / "docker_host.txt").read_text().strip()
    assert docker_host == settings["runtime_host"]


@pytest.mark.usefixtures("slurm")
def test_command_line_logdir_wins_over_the_profile_on_slurm(tmp_path: Path) -> None:
    workdir = prepare(tmp_path / "wf", PROBE_RULE)
    profile = write_profile(
        tmp_path / "profile",
        {"logdir": "logs-from-profile", "keep_successful_logs": True},
        executor="kindslurm", jobs=1,
    )  # fmt: skip
    done = run_with_profile(workdir, profile, "--kindslurm-logdir", "logs-from-cli")
    assert done.returncode == 0, done.output
    assert len(job_logs(workdir / "logs-from-cli" / "rule_probe")) == 1, done.output
    assert not (workdir / "logs-from-profile").exists()


@pytest.mark.usefixtures("slurm")
def test_the_documented_profile_runs_plain_jobs_on_slurm(tmp_path: Path) -> None:
    workdir = write_workflow(
        tmp_path / "wf",
        """
        rule prepare_data:
            output: "data/scontrol.txt"
            shell: "scontrol show job $SLURM_JOB_ID > {output}"
        """,
    )
    # kind_cluster=0 and mem_mb=1000 come from the profile's set-resources,
    # runtime=60 from its default-resources.
    done = run_with_profile(workdir, DOCS_PROFILE)
    assert done.returncode == 0, done.output
    scontrol = (workdir / "data" / "scontrol.txt").read_text()
    assert "TimeLimit=01:00:00" in scontrol, scontrol
    assert re.search(r"\bMinMemoryNode=954M\b", scontrol), scontrol
    assert not job_logs(workdir / ".snakemake" / "kindslurm_logs"), "successful logs are removed"
