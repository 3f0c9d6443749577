"""sbatch argv and job script builders, resource mapping and option validation."""

import shlex
import subprocess

import pytest

from snakemake_executor_plugin_kindslurm.slurm.environment import clean_slurm_environment
from snakemake_executor_plugin_kindslurm.slurm.submit import (
    SIGNAL_EARLY_SECONDS,
    SlurmRequest,
    SubmitError,
    build_comment,
    build_job_script,
    build_sbatch_argv,
    build_slurm_request,
    explain_sbatch_error,
    log_path_pattern,
    parse_sbatch_output,
    time_limit_warning,
    validate_sbatch_extra,
)


def test_full_resource_mapping():
    req = build_slurm_request(
        "align",
        4,
        {
            "mem_mb": 2000, "runtime": 90, "slurm_partition": "short", "slurm_account": "lab",
            "qos": "normal", "constraint": "avx2&ssd", "gpu": 2, "gpu_model": "a100",
            "slurm_extra": "--exclusive --reservation=r1 --mail-type NONE",
        },
    )
    argv = build_sbatch_argv(
        sbatch="sbatch", job_name="run1", workdir="/w", output="/w/l/%j.log",
        comment="rule=align", request=req, grace_seconds=45, global_extra=("--hold",),
    )
    assert argv == [
        "sbatch", "--parsable", "--job-name=run1", "--chdir=/w", "--output=/w/l/%j.log",
        "--comment=rule=align", "--nodes=1", "--ntasks=1", "--cpus-per-task=4",
        "--signal=B:USR1@45", "--mem=2000M", "--time=90", "--partition=short",
        "--account=lab", "--qos=normal", "--constraint=avx2&ssd", "--gpus=a100:2",
        "--hold", "--exclusive", "--reservation=r1", "--mail-type", "NONE",
    ]


@pytest.mark.parametrize(
    ("grace", "limit", "lead"),
    [
        pytest.param(60, None, 60, id="no-limit"),
        pytest.param(60, 3600, 60, id="hour"),
        pytest.param(60, 240, 60, id="4min-full-lead"),
        # The warning may come 60 s early: 3 minutes leave 30 s of lead at most.
        pytest.param(60, 180, 30, id="3min-cut"),
        pytest.param(5, 180, 5, id="3min-small-grace"),
        # Even an early warning must not come before half-way: none at all.
        pytest.param(60, 120, None, id="2min-none"),
        pytest.param(60, 60, None, id="1min-none"),
        pytest.param(60, 130, None, id="below-minimum"),
        pytest.param(5, 130, 5, id="small-grace-fits"),
    ],
)
def test_time_limit_warning(grace: int, limit: int | None, lead: int | None) -> None:
    assert time_limit_warning(grace, limit) == lead
    if lead is not None and limit is not None:
        # The earliest warning Slurm may send still leaves half the job.
        assert limit - lead - SIGNAL_EARLY_SECONDS >= limit / 2


@pytest.mark.parametrize(
    ("runtime", "signal"),
    [(None, "--signal=B:USR1@60"), (90, "--signal=B:USR1@60"), (3, "--signal=B:USR1@30"),
     (2, None), (1, None)],
)  # fmt: skip
def test_signal_follows_the_runtime(runtime: int | None, signal: str | None) -> None:
    request = build_slurm_request("r", 1, {} if runtime is None else {"runtime": runtime})
    argv = build_sbatch_argv(
        sbatch="sbatch", job_name="n", workdir="/w", output="o", comment="c",
        request=request, grace_seconds=60,
    )  # fmt: skip
    assert [a for a in argv if a.startswith("--signal")] == ([signal] if signal else [])


@pytest.mark.parametrize(
    ("runtime", "partition_limit", "signal"),
    [(None, 120, None), (None, 600, "--signal=B:USR1@60"), (None, None, "--signal=B:USR1@60"),
     (10, 120, "--signal=B:USR1@60")],
)  # fmt: skip
def test_signal_follows_the_partition_default_without_runtime(
    runtime: int | None, partition_limit: int | None, signal: str | None
) -> None:
    # The partition's default applies only when the rule sets no runtime.
    request = build_slurm_request("r", 1, {} if runtime is None else {"runtime": runtime})
    argv = build_sbatch_argv(
        sbatch="sbatch", job_name="n", workdir="/w", output="o", comment="c",
        request=request, grace_seconds=60, default_time_limit=partition_limit,
    )  # fmt: skip
    assert [a for a in argv if a.startswith("--signal")] == ([signal] if signal else [])
    assert not any(a.startswith("--time") for a in argv) if runtime is None else True


def test_mem_mib_preferred_and_string_numbers_accepted():
    req = build_slurm_request("r", "2", {"mem_mb": 1049, "mem_mib": "1000", "runtime": "5"})
    assert (req.cpus_per_task, req.mem_mb, req.time_minutes) == (2, 1000, 5)


def test_minimal_request_has_no_optional_options():
    argv = build_sbatch_argv(
        sbatch="sbatch", job_name="n", workdir="/w", output="o", comment="c",
        request=SlurmRequest(), grace_seconds=60,
    )
    assert not any(a.startswith(("--mem", "--time", "--partition", "--gres")) for a in argv)


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        pytest.param({"nodes": 2}, "single node", id="nodes>1"),
        pytest.param({"mem_mb": "lots"}, "mem_mb must be a whole number", id="mem-text"),
        pytest.param({"runtime": "1h30"}, "runtime must be a whole number", id="runtime-text"),
        pytest.param({"runtime": 0}, "at least 1", id="runtime-zero"),
        pytest.param({"gpu": "two"}, "gpu must be a whole number", id="gpu-text"),
        pytest.param({"gpu": 1, "gres": "gpu:1"}, "either gres or gpu", id="gpu+gres"),
        pytest.param({"gres": "gpu 1; rm"}, "gres='gpu 1; rm' is malformed", id="gres-bad"),
        pytest.param({"slurm_partition": "a b"}, "not a valid Slurm name", id="partition-space"),
        pytest.param({"slurm_extra": "--job-name=x"}, "--job-name is not allowed", id="jobname"),
        pytest.param({"slurm_extra": "-o x"}, "-o is not allowed", id="output"),
        pytest.param({"slurm_extra": "--wrap='rm -rf /'"}, "--wrap is not allowed", id="wrap"),
        pytest.param({"slurm_extra": "--parsable"}, "--parsable is not allowed", id="parsable"),
        pytest.param({"slurm_extra": "exclusive"}, "is not an sbatch option", id="no-dash"),
        pytest.param({"slurm_extra": "--qos='unclosed"}, "cannot parse", id="bad-quote"),
        pytest.param({"slurm_extra": "--exclusive=1 stray"}, "is not an sbatch option", id="stray"),
        pytest.param({"mem": "lots"}, "was not understood", id="mem-unparsed"),
        pytest.param({"threads_fake": 1, "nodes": "x"}, "nodes must be", id="nodes-text"),
    ],
)
def test_bad_resources_are_rejected_with_clear_message(resources, message):
    with pytest.raises(SubmitError) as info:
        build_slurm_request("myrule", 1, resources)
    assert message in str(info.value)
    assert "myrule" in str(info.value)


def test_nodes_one_is_fine():
    assert build_slurm_request("r", 1, {"nodes": 1}).cpus_per_task == 1


def test_global_extra_validation_names_its_origin():
    with pytest.raises(SubmitError, match="--kindslurm-sbatch-extra: option --chdir"):
        validate_sbatch_extra("--chdir=/tmp", "--kindslurm-sbatch-extra")
    assert validate_sbatch_extra("-w node1 --exclusive", "x") == ("-w", "node1", "--exclusive")


def test_log_path_is_safe_for_hostile_wildcards():
    path = log_path_pattern(
        "/logs", "r", {"sample": "a b/../$(touch x);`id`\n%j", "n": "1"}
    )
    assert path.startswith("/logs/rule_r/")
    assert path.endswith("/%j.log")
    middle = path[len("/logs/rule_r/"):-len("/%j.log")]
    assert "/" not in middle and "%" not in middle and "$" not in middle and "\n" not in middle


def test_log_path_without_wildcards():
    assert log_path_pattern("/l", "all", {}) == "/l/rule_all/%j.log"


def test_comment_is_printable():
    comment = build_comment("r", {"s": "a\nb"})
    assert comment == "rule=r wildcards=s=a?b"


def test_job_script_execs_runner_with_every_value_quoted(tmp_path):
    hostile = "echo \"$HOME\" `id` $(touch pwned) ; it's\nnext"
    script = build_job_script(
        python="/usr/bin/python3", spec_json='{"a":"it\'s $(x)"}', command=hostile,
        description="rule r\nwith newline",
    )
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "\n# kindslurm job script: rule r?with newline\n" in script
    # What sh would exec: parse the exec line with a real shell and compare argv.
    body = script.split("exec ", 1)[1]
    out = subprocess.run(
        ["/bin/sh", "-c", "for a in " + body.strip() + "; do printf '%s\\0' \"$a\"; done"],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    ).stdout.split("\0")[:-1]
    assert out == [
        "/usr/bin/python3", "-m", "snakemake_executor_plugin_kindslurm.runner",
        "--spec", '{"a":"it\'s $(x)"}', "--", "/bin/sh", "-c", hostile,
    ]
    assert not (tmp_path / "pwned").exists()
    assert shlex.split(body)[-1] == hostile


@pytest.mark.parametrize(
    ("stdout", "jobid"),
    [("42\n", "42"), ("42;cluster\n", "42"), ("sbatch: warning: x\n77\n", "77")],
)
def test_parse_sbatch_output(stdout, jobid):
    assert parse_sbatch_output(stdout) == jobid


def test_parse_sbatch_output_without_id():
    with pytest.raises(ValueError, match="no job id"):
        parse_sbatch_output("Submitted batch job\n")


@pytest.mark.parametrize(
    ("stderr", "hint"),
    [
        ("sbatch: error: invalid partition specified: nope", "sinfo -s"),
        ("sbatch: error: Batch job submission failed: Invalid account or account/partition "
         "combination specified", "sacctmgr"),
        ("sbatch: unrecognized option '--bogus'", "slurm_extra"),
    ],
)
def test_explain_sbatch_error(stderr, hint):
    assert hint in explain_sbatch_error(stderr)


def test_inherited_slurm_variables_do_not_reach_sbatch():
    env = clean_slurm_environment(
        {"PATH": "/bin", "SLURM_JOB_ID": "5", "SLURM_MEM_PER_CPU": "100", "SBATCH_PARTITION": "x",
         "SLURM_CONF": "/etc/slurm/slurm.conf", "SRUN_CPUS_PER_TASK": "2", "HOME": "/h"}
    )
    assert env == {"PATH": "/bin", "SLURM_CONF": "/etc/slurm/slurm.conf", "HOME": "/h"}


def test_tiny_memory_requests_are_raised_to_the_floor():
    assert build_slurm_request("r", 1, {"mem_mb": 5, "mem_mib": 4}, min_mem_mb=300).mem_mb == 300
    assert build_slurm_request("r", 1, {"mem_mb": 4000}, min_mem_mb=300).mem_mb == 4000
    assert build_slurm_request("r", 1, {}, min_mem_mb=300).mem_mb is None
