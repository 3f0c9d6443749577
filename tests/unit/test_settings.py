"""ExecutorSettings as Snakemake sees them: every field has help and a default, types
Snakemake can parse, and validation refuses impossible values."""

import dataclasses
import typing

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_kindslurm.settings import ExecutorSettings


def test_every_field_has_help_default_and_a_type_snakemake_understands():
    for f in dataclasses.fields(ExecutorSettings):
        assert f.metadata.get("help"), f.name
        assert f.default is not dataclasses.MISSING, f.name
        # Snakemake accepts plain types or typing.Optional[X], never `X | None`.
        hint = f.type
        assert not isinstance(hint, str), f"{f.name}: postponed annotation"
        if typing.get_origin(hint) is not None:
            assert typing.get_origin(hint) is typing.Union, f.name


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"provider": "lxc"}, "--kindslurm-provider"),
        ({"status_command": "scontrol"}, "--kindslurm-status-command"),
        ({"create_timeout": 0}, "--kindslurm-create-timeout"),
        ({"cleanup_grace_seconds": -1}, "--kindslurm-cleanup-grace-seconds"),
        ({"max_status_interval": -1}, "--kindslurm-max-status-interval"),
        ({"kind_config": "/nonexistent/kind.yaml"}, "no such file"),
        ({"sbatch_extra": "--qos='x"}, "cannot be parsed"),
        ({"runtime_host": "/run/podman.sock"}, "--kindslurm-runtime-host"),
        ({"runtime_host": "unix://"}, "not a runtime service URL"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(WorkflowError, match=message):
        ExecutorSettings(**kwargs)


def test_defaults_are_valid():
    s = ExecutorSettings()
    assert (s.provider, s.status_command, s.cleanup_grace_seconds) == ("podman", "auto", 60)


@pytest.mark.parametrize(
    "url", ["unix:///run/podman-kind/podman.sock", "tcp://10.0.0.5:8888", "ssh://u@h/run/p.sock"]
)
def test_runtime_host_urls_podman_and_docker_accept(url):
    assert ExecutorSettings(runtime_host=url).runtime_host == url
