"""The documentation cannot drift from the code.

docs/further.md and README.md must list exactly the ExecutorSettings fields
(with the right defaults in further.md), further.md must list exactly the
per-rule resources the executor reads, docs/profile/config.yaml must carry
every setting at its default, and docs/intro.md / further.md must have the
layout the Snakemake plugin catalog expects.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from snakemake_executor_plugin_kindslurm.executor import CLUSTER_RESOURCES, cluster_resources
from snakemake_executor_plugin_kindslurm.settings import ExecutorSettings
from snakemake_executor_plugin_kindslurm.slurm.submit import build_slurm_request

ROOT = Path(__file__).resolve().parents[2]
INTRO = ROOT / "docs" / "intro.md"
FURTHER = ROOT / "docs" / "further.md"
PROFILE = ROOT / "docs" / "profile" / "config.yaml"
README = ROOT / "README.md"

FIELDS = {f.name: f for f in dataclasses.fields(ExecutorSettings)}
# `threads` is documented with the resources but is the rule's `threads:`,
# which the executor passes to build_slurm_request on its own.
RULE_DIRECTIVES = {"threads"}
_FLAG = re.compile(r"--kindslurm-([a-z0-9]+(?:-[a-z0-9]+)*)")
_BACKTICKED = re.compile(r"`([^`]+)`")


def flag(name: str) -> str:
    return "--kindslurm-" + name.replace("_", "-")


def profile_key(name: str) -> str:
    return "kindslurm-" + name.replace("_", "-")


# ------------------------------------------------------------- markdown ---


def prose_lines(text: str) -> Iterator[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def parse_tables(text: str) -> list[list[list[str]]]:
    """Every pipe table outside code blocks, as rows of cells (header row
    first, the |---| separator dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*prose_lines(text), ""]:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            cells = [cell.strip() for cell in stripped.strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def table_starting_with(text: str, first_header: str) -> list[list[str]]:
    """The body rows of the one table whose first header cell is first_header."""
    found = [t for t in parse_tables(text) if t[0][0].lower() == first_header]
    assert len(found) == 1, f"expected one table with header {first_header!r}, got {len(found)}"
    return found[0][1:]


def headings(text: str) -> list[tuple[int, str]]:
    found = []
    for line in prose_lines(text):
        match = re.match(r"^(#{1,6})\s+(.*\S)\s*$", line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def github_anchor(title: str) -> str:
    """The id GitHub (and, for these titles, Sphinx) gives a heading."""
    text = title.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def backticked(cell: str) -> list[str]:
    return _BACKTICKED.findall(cell)


# -------------------------------------------------------------- helpers ---


def parse_default_cell(cell: str) -> Any:
    """`300` -> 300, `1` -> 1.0-compatible, `false` -> False, `podman` -> "podman",
    `unset...` -> None."""
    if cell.lower().startswith("unset"):
        return None
    values = backticked(cell)
    assert values, f"default cell {cell!r} has no `value`"
    text = values[0]
    if text in ("true", "false"):
        return text == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


class RecordingResources(dict[str, Any]):
    """A resources mapping that remembers every key the code looks up."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)


def resources_the_code_reads() -> set[str]:
    """Every resource name the Slurm mapping and the cluster choice look up.

    Two Slurm passes: gpu_model is only read when gpu is set.
    """
    read: set[str] = set()
    for given in ({}, {"gpu": 1}):
        recorder = RecordingResources(given)
        build_slurm_request("r", 1, recorder)
        read |= recorder.read
    recorder = RecordingResources()
    cluster_resources([("r", recorder)])
    read |= recorder.read
    assert set(CLUSTER_RESOURCES) <= read
    return read


# ---------------------------------------------------------------- tests ---


@pytest.fixture(scope="module")
def further() -> str:
    return FURTHER.read_text()


@pytest.fixture(scope="module")
def settings_rows(further: str) -> dict[str, list[str]]:
    rows = table_starting_with(further, "option")
    by_flag: dict[str, list[str]] = {}
    for row in rows:
        names = [v for v in backticked(row[0]) if v.startswith("--kindslurm-")]
        assert len(names) == 1, f"settings row without exactly one option: {row}"
        assert names[0] not in by_flag, f"{names[0]} is listed twice"
        by_flag[names[0]] = row
    return by_flag


def test_further_lists_exactly_the_settings(settings_rows: dict[str, list[str]]) -> None:
    documented = set(settings_rows)
    expected = {flag(name) for name in FIELDS}
    assert documented - expected == set(), "documented but not a setting"
    assert expected - documented == set(), "a setting missing from docs/further.md"


def test_further_settings_table_names_the_profile_key(
    settings_rows: dict[str, list[str]],
) -> None:
    for name in FIELDS:
        row = settings_rows[flag(name)]
        assert backticked(row[1]) == [profile_key(name)], row


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_further_settings_table_shows_the_default(
    settings_rows: dict[str, list[str]], name: str
) -> None:
    row = settings_rows[flag(name)]
    assert parse_default_cell(row[2]) == FIELDS[name].default, row
    assert row[3], f"{flag(name)} has no meaning"


def test_readme_configuration_table_lists_exactly_the_settings() -> None:
    documented = {
        value
        for table in parse_tables(README.read_text())
        for row in table[1:]
        for value in backticked(row[0])
        if value.startswith("--kindslurm-")
    }
    expected = {flag(name) for name in FIELDS}
    assert documented - expected == set(), "README.md documents a setting that does not exist"
    assert expected - documented == set(), "a setting missing from README.md's table"


@pytest.mark.parametrize("path", [INTRO, FURTHER, README], ids=lambda p: p.name)
def test_every_kindslurm_option_mentioned_exists(path: Path) -> None:
    mentioned = {match.group(0) for match in _FLAG.finditer(path.read_text())}
    unknown = mentioned - {flag(name) for name in FIELDS}
    assert unknown == set(), f"{path.name} mentions options that do not exist"


def test_further_lists_exactly_the_resources_the_code_reads(further: str) -> None:
    documented: set[str] = set()
    for row in table_starting_with(further, "resource"):
        names = backticked(row[0])
        assert names, f"resource row without a `name`: {row}"
        documented.update(names)
    expected = resources_the_code_reads() | RULE_DIRECTIVES
    assert documented - expected == set(), "documented but never read by the executor"
    assert expected - documented == set(), "read by the executor but not documented"


def test_further_anchor_links_point_at_headings(further: str) -> None:
    titles = [title for _, title in headings(further)]
    anchors = {github_anchor(title) for title in titles}
    links = re.findall(r"\[([^\]]+)\]\(#([^)]+)\)", further)
    assert links, "expected cross references in further.md"
    assert {target for _, target in links} - anchors == set()
    # The catalog converts Markdown to reStructuredText, where a link text equal
    # to a section title clashes with the section's own target and the link
    # goes nowhere.
    clashing = {text for text, _ in links} & {t.replace("`", "") for t in titles}
    assert clashing == set()


def test_profile_has_every_setting_at_its_default() -> None:
    profile = yaml.safe_load(PROFILE.read_text())
    keys = {key for key in profile if key.startswith("kindslurm-")}
    expected = {profile_key(name): field.default for name, field in FIELDS.items()}
    assert keys - set(expected) == set(), "profile keys that are no setting"
    assert set(expected) - keys == set(), "settings missing from docs/profile/config.yaml"
    for key, default in expected.items():
        assert profile[key] == default, f"{key}: {profile[key]!r} is not the default {default!r}"


def test_profile_chooses_the_executor_and_shows_the_resources() -> None:
    text = PROFILE.read_text()
    profile = yaml.safe_load(text)
    assert profile["executor"] == "kindslurm"
    assert isinstance(profile["jobs"], int)
    assert {"kind_cluster", "mem_mb", "runtime"} <= set(profile["default-resources"])
    assert profile["set-resources"], "set-resources example missing"
    assert all(isinstance(v, dict) for v in profile["set-resources"].values())
    for placeholder in ("slurm_partition", "slurm_account"):
        assert f"# {placeholder}:" in text, f"commented {placeholder} placeholder missing"


def test_intro_is_plain_prose_for_the_catalog() -> None:
    # The catalog prints intro.md right under its own page title.
    text = INTRO.read_text()
    assert len(text.split()) >= 40
    assert headings(text) == [], "intro.md must not have headings"


def test_further_starts_with_a_third_level_heading_and_never_skips_levels(
    further: str,
) -> None:
    # The catalog renders further.md inside its "Further details" section, so
    # (as in the Slurm executor's docs) sections start at ###, never # or ##.
    first_line = next(line for line in further.splitlines() if line.strip())
    assert first_line.startswith("### "), first_line
    found = headings(further)
    assert min(level for level, _ in found) == 3
    for (before, _), (level, title) in itertools.pairwise(found):
        assert level <= before + 1, f"heading {title!r} skips a level"
    titles = [title for _, title in found]
    assert len(titles) == len(set(titles)), "duplicate heading titles break anchors"
    assert "Troubleshooting" in titles


def test_further_shows_the_epilog_that_kindslurm_help_prints(further: str) -> None:
    """One epilog script for administrators, the one the integration test runs."""
    import textwrap

    from snakemake_executor_plugin_kindslurm import cli

    lines = (cli.__doc__ or "").splitlines()
    start = lines.index("    #!/bin/sh")
    end = next(i for i in range(start, len(lines)) if lines[i].lstrip().startswith("exit 0"))
    script = textwrap.dedent("\n".join(lines[start : end + 1]))
    assert f"```bash\n{script}\n```" in further
