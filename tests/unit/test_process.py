"""The subprocess chokepoint: typed errors that carry argv, output and a fix."""

import pytest

from snakemake_executor_plugin_kindslurm import process


def test_run_returns_output_and_duration():
    result = process.run(["sh", "-c", "echo out; echo err >&2"])
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")
    assert result.output == "out\nerr"
    assert result.duration >= 0


def test_failure_carries_argv_output_and_fix():
    with pytest.raises(process.CommandError) as info:
        process.run(["sh", "-c", "echo boom >&2; exit 3", "x y"], hint="do the thing")
    err = info.value
    assert err.returncode == 3 and err.argv[-1] == "x y"
    text = str(err)
    assert "sh -c 'echo boom >&2; exit 3' 'x y'" in text  # pasteable
    assert "boom" in text and "fix: do the thing" in text


def test_check_false_returns_the_failure():
    assert process.run(["sh", "-c", "exit 4"], check=False).returncode == 4


@pytest.mark.parametrize("executable", [False, True], ids=["missing", "not-executable"])
def test_programs_that_cannot_start(tmp_path, executable):
    program = tmp_path / "tool"
    if executable:
        program.write_text("#!/bin/sh\n")
        program.chmod(0o644)
    argv = [str(program)]
    reason = "program not executable" if executable else "program not found"
    for start in (process.run, process.spawn):
        with pytest.raises(process.CommandNotFoundError) as info:
            start(argv)
        assert info.value.reason == reason
        assert argv[0] in info.value.hint


def test_timeout_is_typed():
    with pytest.raises(process.CommandTimeoutError, match=r"timed out after 0\.2 s"):
        process.run(["sleep", "5"], timeout=0.2)


def test_input_reaches_stdin():
    assert process.run(["cat"], input="hello").stdout == "hello"
