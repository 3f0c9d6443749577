"""The private kubeconfig: a context named exactly like the cluster, current, mode 0600."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path

import pytest
import yaml

from snakemake_executor_plugin_kindslurm.kind.kubeconfig import (
    KubeconfigError,
    ensure_cluster_context,
    parse_kubeconfig,
    rewrite_kubeconfig,
    write_private_file,
)

DATA = Path(__file__).parent.parent / "data" / "kind"
RECORDED = DATA / "kubeconfig-kind.yaml"  # what kind 0.27 wrote for ks-rec-abc123
NAME = "ks-rec-abc123"


def _recorded() -> dict[str, object]:
    return parse_kubeconfig(RECORDED.read_text(), str(RECORDED))


def test_rewrite_adds_a_current_context_named_like_the_cluster() -> None:
    original = _recorded()
    before = copy.deepcopy(original)
    result = rewrite_kubeconfig(original, NAME)
    assert original == before, "input changed"
    assert result["current-context"] == NAME
    contexts = {c["name"]: c["context"] for c in result["contexts"]}
    assert contexts == {
        f"kind-{NAME}": {"cluster": f"kind-{NAME}", "user": f"kind-{NAME}"},
        NAME: {"cluster": f"kind-{NAME}", "user": f"kind-{NAME}"},
    }
    assert result["clusters"] == original["clusters"]
    assert result["users"] == original["users"]


def test_rewrite_is_idempotent() -> None:
    once = rewrite_kubeconfig(_recorded(), NAME)
    assert rewrite_kubeconfig(once, NAME) == once


def test_rewrite_falls_back_to_the_only_context() -> None:
    data = {"contexts": [{"name": "other", "context": {"cluster": "c", "user": "u"}}]}
    result = rewrite_kubeconfig(data, NAME)
    assert result["contexts"][-1] == {"name": NAME, "context": {"cluster": "c", "user": "u"}}
    assert result["current-context"] == NAME


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({}, "no context 'kind-ks-rec-abc123' \\(contexts: none\\)", id="no-contexts"),
        pytest.param(
            {"contexts": [{"name": "a", "context": {}}, {"name": "b", "context": {}}]},
            "contexts: a, b",
            id="ambiguous",
        ),
        pytest.param({"contexts": "x"}, "not a list", id="not-a-list"),
        pytest.param(
            {"contexts": [{"name": f"kind-{NAME}"}]}, "has no `context` entry", id="no-entry"
        ),
    ],
)
def test_rewrite_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(KubeconfigError, match=message):
        rewrite_kubeconfig(data, NAME)


def test_parse_errors() -> None:
    with pytest.raises(KubeconfigError, match="not valid YAML"):
        parse_kubeconfig("a: [", "kc")
    with pytest.raises(KubeconfigError, match="expected a kubeconfig mapping, got list"):
        parse_kubeconfig("- a\n", "kc")


def test_ensure_cluster_context_rewrites_the_file_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(RECORDED.read_text())
    path.chmod(0o644)
    old = os.umask(0)
    try:
        ensure_cluster_context(path, NAME)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = yaml.safe_load(path.read_text())
    assert data["current-context"] == NAME
    assert [p.name for p in tmp_path.iterdir()] == ["kubeconfig"], "temporary file left"


def test_ensure_cluster_context_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="cannot read the kubeconfig kind wrote"):
        ensure_cluster_context(tmp_path / "nope", NAME)


def test_write_private_file_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_private_file(path, "one")
    write_private_file(path, "two")
    assert path.read_text() == "two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
