"""Pure helpers of the executor: quoting of Snakemake's job arguments, kind_cluster."""

import shlex

import pytest
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.utils import format_cli_arg

from snakemake_executor_plugin_kindslurm.executor import kind_cluster_wanted, requote_cli_arg


def test_requote_replaces_repr_quoting_with_shell_quoting():
    values = ["r:v=it's $(touch x)", "r:v=`id`"]
    args = "--cores 1 " + format_cli_arg("--target-jobs", values) + " --attempt 1"
    # Snakemake's repr() falls back to double quotes here, which the shell expands.
    assert '"r:v=it\'s $(touch x)"' in args
    fixed = requote_cli_arg(args, "--target-jobs", values)
    tokens = shlex.split(fixed)
    i = tokens.index("--target-jobs")
    assert tokens[i + 1 : i + 3] == values
    assert tokens[-2:] == ["--attempt", "1"]


def test_requote_leaves_args_alone_when_flag_absent():
    assert requote_cli_arg("--cores 1", "--target-jobs", ["a"]) == "--cores 1"
    assert requote_cli_arg("--cores 1", "--target-jobs", []) == "--cores 1"


@pytest.mark.parametrize(
    ("value", "wanted"),
    [
        (0, False),
        (1, True),
        ("0", False),
        ("1", True),
        ("true", True),
        ("no", False),
        (True, True),
        (False, False),
    ],
)
def test_kind_cluster_values(value, wanted):
    assert kind_cluster_wanted("r", {"kind_cluster": value}) is wanted


def test_kind_cluster_default_is_on():
    assert kind_cluster_wanted("r", {}) is True


def test_kind_cluster_bad_value():
    with pytest.raises(WorkflowError, match="rule r: resource kind_cluster='maybe'"):
        kind_cluster_wanted("r", {"kind_cluster": "maybe"})


def test_group_without_cluster_rules_needs_no_cluster():
    from snakemake_executor_plugin_kindslurm.executor import cluster_resources

    assert cluster_resources([("a", {"kind_cluster": 0}), ("b", {"kind_cluster": "0"})]) is None


def test_group_with_one_cluster_rule_gets_its_resources():
    from snakemake_executor_plugin_kindslurm.executor import cluster_resources

    chosen = cluster_resources(
        [
            ("prep", {"kind_cluster": 0, "kind_node_image": "ignored"}),
            ("k8s", {"kind_node_image": "img:1", "kind_config": "c.yaml"}),
            ("k8s2", {"kind_node_image": "img:1"}),
        ]
    )
    assert chosen == {"kind_node_image": "img:1", "kind_config": "c.yaml"}


def test_group_rules_must_agree_on_the_shared_cluster():
    from snakemake_executor_plugin_kindslurm.executor import cluster_resources

    with pytest.raises(WorkflowError, match=r"different kind_node_image \(a: 'x', b: 'y'\)"):
        cluster_resources([("a", {"kind_node_image": "x"}), ("b", {"kind_node_image": "y"})])


def test_split_image_list(tmp_path, monkeypatch):
    from snakemake_executor_plugin_kindslurm.spec import split_image_list

    monkeypatch.chdir(tmp_path)
    assert split_image_list(None) == []
    assert split_image_list(" img.tar , localhost/app:1,,docker.io/x/y ") == [
        str(tmp_path / "img.tar"),
        "localhost/app:1",
        "docker.io/x/y",
    ]


@pytest.mark.parametrize(
    ("age", "maximum", "expected"),
    [
        (0.5, 30.0, 3.0),
        (10.0, 30.0, 3.0),
        (75.0, 30.0, 7.5),
        (5000.0, 30.0, 30.0),
        (100.0, 2.0, 2.0),
    ],
)
def test_status_interval_follows_job_age(age, maximum, expected):
    from snakemake_executor_plugin_kindslurm.executor import next_status_interval

    assert next_status_interval(age, maximum) == pytest.approx(expected)


def test_job_environment_sets_the_runtime_service_of_the_provider():
    from snakemake_executor_plugin_kindslurm.executor import job_environment

    environ = {"PATH": "/bin", "SLURM_JOB_ID": "7", "CONTAINER_HOST": "unix:///mine.sock"}
    assert job_environment(environ, "podman", None) == {
        "PATH": "/bin", "CONTAINER_HOST": "unix:///mine.sock",
    }  # fmt: skip
    assert job_environment(environ, "podman", "unix:///shared.sock")["CONTAINER_HOST"] == (
        "unix:///shared.sock"
    )
    docker = job_environment({"PATH": "/bin"}, "docker", "tcp://h:2375")
    assert docker == {"PATH": "/bin", "DOCKER_HOST": "tcp://h:2375"}
