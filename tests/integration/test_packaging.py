"""The release artefacts: build the sdist and the wheel, install the wheel into a
fresh venv, and use it from outside the repository (on the real Slurm when it
is up).

One module-scoped build and venv serve every test. The source tree is copied
to a temporary directory first, so the build leaves no egg-info or build/
directory in the repository. Timings are printed (pytest -s shows them).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from snakemake_executor_plugin_kindslurm.settings import ExecutorSettings
from tests.conftest import missing

from .workflows import RUN_NAME, write_workflow

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "snakemake_executor_plugin_kindslurm"
DIST_NAME = "snakemake-executor-plugin-kindslurm"
SYSTEM_PYTHON = "/usr/bin/python3"
# Not part of the source tree a build needs (and large or private).
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "*.egg-info", "__pycache__", ".*_cache", ".benchmarks", "build", "dist",
    "results",
)  # fmt: skip
CLI_COMMANDS = ("run", "up", "down", "list", "gc", "doctor", "ci-setup")


def source_version() -> str:
    text = (ROOT / PACKAGE / "_version.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    assert match, "no __version__ in _version.py"
    return match.group(1)


def package_data_files() -> dict[str, bool]:
    """Files the wheel must carry besides modules: path in the wheel -> executable."""
    paths = [ROOT / PACKAGE / "py.typed", *sorted((ROOT / PACKAGE / "testbed").rglob("*"))]
    return {
        p.relative_to(ROOT).as_posix(): os.access(p, os.X_OK)
        for p in paths
        if p.is_file() and "__pycache__" not in p.parts
    }


def settings_flags() -> list[str]:
    return ["--kindslurm-" + f.name.replace("_", "-") for f in dataclasses.fields(ExecutorSettings)]


def clean_env(venv: Path) -> dict[str, str]:
    """The environment of a user who has only the fresh venv: no PYTHONPATH,
    no other venv, the venv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    others = [p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *others])
    env["VIRTUAL_ENV"] = str(venv)
    return env


def run(argv: list[str], *, timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload,no-any-return]


@dataclass
class Release:
    sdist: Path
    wheel: Path
    venv: Path
    outside: Path  # a working directory outside the repository
    timings: dict[str, float] = field(default_factory=dict)

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    @property
    def env(self) -> dict[str, str]:
        return clean_env(self.venv)


def build(src: Path, outdir: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(outdir), str(src)]
    proc = run(argv, timeout=600, cwd=src)
    if proc.returncode != 0 and re.search(
        r"(?i)network|connection|resolve|index|could not find a version", proc.stdout + proc.stderr
    ):
        # Offline: build with the tools of this venv instead of a fresh isolated env.
        proc = run([*argv[:3], "--no-isolation", "--skip-dependency-check", *argv[3:]],
                   timeout=600, cwd=src)  # fmt: skip
    return proc


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        missing(f"{SYSTEM_PYTHON} (the fresh venv is made with the system Python)")
    base = tmp_path_factory.mktemp("release")
    src, dist, venv, outside = base / "src", base / "dist", base / "venv", base / "outside"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)
    outside.mkdir()
    timings: dict[str, float] = {}

    start = time.monotonic()
    proc = build(src, dist)
    timings["build sdist+wheel"] = time.monotonic() - start
    assert proc.returncode == 0, f"build failed:\n{proc.stdout}\n{proc.stderr}"
    sdists = sorted(dist.glob("*.tar.gz"))
    wheels = sorted(dist.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in dist.iterdir())

    start = time.monotonic()
    proc = run([SYSTEM_PYTHON, "-m", "venv", str(venv)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    proc = run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
         str(wheels[0])],
        timeout=600, cwd=outside, env=clean_env(venv),
    )  # fmt: skip
    timings["venv + pip install wheel"] = time.monotonic() - start
    if proc.returncode != 0 and re.search(r"(?i)network|connection|resolve", proc.stderr):
        missing(f"PyPI (pip could not download the dependencies):\n{proc.stderr[-2000:]}")
    assert proc.returncode == 0, f"pip install failed:\n{proc.stdout[-3000:]}\n{proc.stderr}"
    release = Release(sdists[0], wheels[0], venv, outside, timings)
    yield release
    print("\npackaging timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    shutil.rmtree(base, ignore_errors=True)  # the venv is a few hundred MB


# ------------------------------------------------------------ artefacts ---


def test_artefacts_carry_the_version_of_version_py(release: Release) -> None:
    version = source_version()
    wheel_name = DIST_NAME.replace("-", "_")
    assert release.wheel.name == f"{wheel_name}-{version}-py3-none-any.whl"
    assert release.sdist.name == f"{wheel_name}-{version}.tar.gz"


def test_wheel_contains_package_data_with_modes(release: Release) -> None:
    with zipfile.ZipFile(release.wheel) as wheel:
        members = {info.filename: info for info in wheel.infolist()}
    for path, executable in package_data_files().items():
        assert path in members, f"{path} is missing from the wheel"
        mode = members[path].external_attr >> 16
        if executable:
            assert mode & 0o111, f"{path} lost its executable bit in the wheel"


def test_wheel_metadata_has_license_urls_and_entry_point(release: Release) -> None:
    with zipfile.ZipFile(release.wheel) as wheel:
        names = wheel.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = wheel.read(f"{info}/METADATA").decode()
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        licenses = [n for n in names if n in (f"{info}/LICENSE", f"{info}/licenses/LICENSE")]
        assert licenses, f"LICENSE is not in {info}"
        assert "MIT License" in wheel.read(licenses[0]).decode()
    assert "License-File: LICENSE" in metadata
    assert re.search(r"^License(-Expression)?: MIT$", metadata, re.M), metadata[:800]
    # The plugin catalog finds docs/intro.md and docs/further.md through this URL.
    assert re.search(r"^Project-URL: Repository, https://github\.com/\S+$", metadata, re.M)
    for label in ("Homepage", "Documentation", "Issues", "Changelog"):
        assert f"Project-URL: {label}, https://" in metadata, label
    assert "kindslurm = snakemake_executor_plugin_kindslurm.cli:main" in entry_points


def test_sdist_contains_license_and_package_data(release: Release) -> None:
    with tarfile.open(release.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for path in ("LICENSE", "README.md", "pyproject.toml", *package_data_files()):
        assert path in names, f"{path} is missing from the sdist"


def test_changelog_has_a_section_for_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    assert re.search(
        rf"^## \[{re.escape(source_version())}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M
    )


# ---------------------------------------------------------- installed ---


def test_installed_package_is_the_wheel_and_has_its_version(release: Release) -> None:
    code = f"import {PACKAGE} as m; print(m.__version__); print(m.__file__)"
    proc = run([release.bin("python"), "-c", code], timeout=60, cwd=release.outside,
               env=release.env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    version, location = proc.stdout.split()
    assert version == source_version()
    assert Path(location).is_relative_to(release.venv), f"imported from {location}"


def test_snakemake_help_lists_every_setting(release: Release) -> None:
    proc = run([release.bin("snakemake"), "--executor", "kindslurm", "--help"], timeout=120,
               cwd=release.outside, env=release.env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    absent = [f for f in settings_flags() if f not in proc.stdout]
    assert absent == [], f"not in `snakemake --help`: {absent}"


def test_kindslurm_command_runs(release: Release) -> None:
    proc = run([release.bin("kindslurm"), "--help"], timeout=60, cwd=release.outside,
               env=release.env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for command in CLI_COMMANDS:
        assert re.search(rf"^\s+{re.escape(command)}\s", proc.stdout, re.M), (
            f"{command} not in --help"
        )
    proc = run([release.bin("kindslurm"), "--version"], timeout=60, cwd=release.outside,
               env=release.env)  # fmt: skip
    assert proc.returncode == 0 and source_version() in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.usefixtures("slurm")
def test_installed_wheel_runs_a_workflow_on_slurm(release: Release) -> None:
    workdir = write_workflow(
        release.outside / "wf",
        """
        rule all:
            input: expand("out/{i}.txt", i=range(2))

        rule make:
            output: "out/{i}.txt"
            resources: kind_cluster=0, mem_mb=200, runtime=5
            shell:
                "echo job-{wildcards.i} $SLURM_JOB_ID > {output} && "
                "scontrol write batch_script $SLURM_JOB_ID - > {output}.script"
        """,
    )
    argv = [release.bin("snakemake"), "--executor", "kindslurm", "--jobs", "2",
            "--latency-wait", "10", "--kindslurm-init-seconds-before-status-checks", "1"]  # fmt: skip
    start = time.monotonic()
    try:
        proc = run(argv, timeout=600, cwd=workdir, env=release.env)
    except subprocess.TimeoutExpired as err:
        cancel_run(str(err.stdout or "") + str(err.stderr or ""))
        raise
    release.timings["workflow on Slurm"] = time.monotonic() - start
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    for i in range(2):
        words = (workdir / "out" / f"{i}.txt").read_text().split()
        assert words[0] == f"job-{i}" and words[1].isdigit(), words
        script = (workdir / "out" / f"{i}.txt.script").read_text()
        # The job ran the runner of the installed wheel, with the venv's Python.
        assert f"exec {release.venv}/bin/python -m {PACKAGE}.runner" in script, script


def cancel_run(output: str) -> None:
    """Cancel the jobs of a run that did not finish in time (named in its output)."""
    match = RUN_NAME.search(output)
    if match:
        subprocess.run(["scancel", f"--name={match.group(1)}"], timeout=60, check=False)
