"""The hosted CI workflow (.github/workflows/ci.yml) cannot run on the machines
this project is developed on; these checks keep it from silently rotting."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
KIND_IMAGE_DIGEST = re.compile(r"^kindest/node:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def realkind(workflow: dict[Any, Any]) -> dict[str, Any]:
    job: dict[str, Any] = workflow["jobs"]["realkind"]
    return job


def run_lines(job: dict[str, Any]) -> list[str]:
    """Every command line of the job's `run:` steps, continuation lines joined."""
    text = "\n".join(step["run"] for step in job["steps"] if "run" in step)
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def pytest_markers(lines: list[str]) -> list[str]:
    """The `-m` expressions of the job's `python -m pytest ...` command lines."""
    found = []
    for line in lines:
        argv = shlex.split(line)
        if "pytest" in argv:
            options = argv[argv.index("pytest") + 1 :]
            found += [options[i + 1] for i, arg in enumerate(options) if arg == "-m"]
    return found


def test_triggers_and_runners(workflow: dict[Any, Any]) -> None:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    triggers = workflow["on"] if "on" in workflow else workflow[True]
    assert {"push", "pull_request"} <= set(triggers)
    for name, job in workflow["jobs"].items():
        assert job["runs-on"] == "ubuntu-latest", name
        assert job["timeout-minutes"] <= 90, name
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@v\d+$", step["uses"]), f"{name}: unpinned {step['uses']}"


def test_unit_job_lints_and_runs_the_unit_tests(workflow: dict[Any, Any]) -> None:
    lines = run_lines(workflow["jobs"]["unit"])
    assert any(line.endswith("ruff check .") for line in lines)
    assert pytest_markers(lines) == ["not integration and not realkind"]


def test_realkind_job_runs_the_realkind_marker(realkind: dict[str, Any]) -> None:
    assert pytest_markers(run_lines(realkind)) == ["realkind"]
    markers = (REPO / "pyproject.toml").read_text()
    assert '"realkind: ' in markers, "the marker must be declared (--strict-markers)"


def test_realkind_job_uses_docker_and_a_pinned_real_node_image(realkind: dict[str, Any]) -> None:
    env = realkind["env"]
    assert env["KINDSLURM_PROVIDER"] == "docker"
    assert KIND_IMAGE_DIGEST.match(env["KINDSLURM_NODE_IMAGE"]), env["KINDSLURM_NODE_IMAGE"]
    assert env["KINDSLURM_REQUIRE_INTEGRATION"] == "1"
    lines = run_lines(realkind)
    assert any("kubernetes-sigs/kind/releases/download/${KIND_VERSION}/" in line for line in lines)
    assert any("dl.k8s.io/release/${KUBECTL_VERSION}/" in line for line in lines)
    assert any(line.startswith("sha256sum --check") for line in lines)
    assert 'docker pull "$KINDSLURM_NODE_IMAGE"' in lines


def test_realkind_job_brings_up_slurm_with_kindslurm_ci_setup(realkind: dict[str, Any]) -> None:
    # The hosted CI uses the shipped command (the same code as users' CI and
    # as scripts/setup.sh), not a copy of the test-bed steps.
    assert (REPO / "snakemake_executor_plugin_kindslurm/testbed/slurm.sh").is_file()
    lines = run_lines(realkind)
    setup = [line for line in lines if "/bin/kindslurm\" ci-setup" in line]
    assert setup and "--user" in setup[0], lines
    install = next(i for i, line in enumerate(lines) if "pip install -e" in line)
    assert install < lines.index(setup[0]), "the plugin must be installed before ci-setup runs"


def test_realkind_matrix_covers_every_example(realkind: dict[str, Any]) -> None:
    examples = sorted(p.parent.name for p in (REPO / "example-workflows").glob("*/Snakefile"))
    assert examples == ["mixed-pipeline", "pytorch-job", "sysbench"]
    assert sorted(realkind["strategy"]["matrix"]["example"]) == examples
    assert realkind["env"]["KINDSLURM_EXAMPLES"] == "${{ matrix.example }}"
    assert realkind["strategy"]["fail-fast"] is False
