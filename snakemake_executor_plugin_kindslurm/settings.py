"""ExecutorSettings: every `--kindslurm-*` option, its default and its validation.

No `from __future__ import annotations` here: Snakemake reads the field types at
run time to build its argument parser, and `typing.Optional` (not `X | None`) is
the only union form it understands.
"""

import os
import shlex
from dataclasses import dataclass, field
from typing import Optional

from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import ExecutorSettingsBase

from .kind.cluster import RUNTIME_HOST

PROVIDERS = ("podman", "docker")
STATUS_COMMANDS = ("auto", "sacct", "squeue")
DEFAULT_LOGDIR = os.path.join(".snakemake", "kindslurm_logs")


def _meta(help: str, **extra: object) -> dict[str, object]:
    return {"help": help, "env_var": False, "required": False, **extra}


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    node_image: Optional[str] = field(
        default=None,
        metadata=_meta(
            "Kind node image for every cluster (e.g. kindest/node:v1.32.2). "
            "Default: the image built into the kind binary. "
            "A rule can override it with the resource kind_node_image."
        ),
    )
    kind_config: Optional[str] = field(
        default=None,
        metadata=_meta(
            "Path of a Kind cluster config (kind.x-k8s.io/v1alpha4) merged into the "
            "generated one: extra mounts, port mappings, feature gates, node labels, "
            "extra nodes. A rule can add its own with the resource kind_config."
        ),
    )
    provider: str = field(
        default="podman",
        metadata=_meta(
            "Container runtime Kind uses for its nodes (podman or docker).",
            choices=list(PROVIDERS),
        ),
    )
    kind_path: str = field(
        default="kind", metadata=_meta("The kind binary (name on PATH or absolute path).")
    )
    kubectl_path: str = field(
        default="kubectl", metadata=_meta("The kubectl binary (name on PATH or absolute path).")
    )
    runtime_path: Optional[str] = field(
        default=None,
        metadata=_meta(
            "The container runtime binary (podman or docker). Default: the provider's name."
        ),
    )
    runtime_host: Optional[str] = field(
        default=None,
        metadata=_meta(
            "URL of a container runtime service that Kind and the rules use instead of "
            "the local runtime, e.g. unix:///run/podman-kind/podman.sock (a rootful "
            "Podman service shared by a group). Every job gets it as CONTAINER_HOST "
            "(podman) or DOCKER_HOST (docker). Default: whatever the environment says."
        ),
    )
    create_timeout: int = field(
        default=300,
        metadata=_meta("Seconds `kind create cluster` may take before the job fails."),
    )
    keep_cluster_on_failure: bool = field(
        default=False,
        metadata=_meta(
            "Debugging: keep the Kind cluster of a job whose workload failed (it is "
            "still deleted on scancel and time limit). The job log says how to delete it."
        ),
    )
    preload_images: Optional[str] = field(
        default=None,
        metadata=_meta(
            "Comma-separated container images to load into every new cluster before the "
            "workload starts, for nodes without internet: image archives (.tar from "
            "`podman save`/`docker save`) or names of images in the local container "
            "storage. A rule adds its own with the resource kind_preload_images."
        ),
    )
    create_lock: bool = field(
        default=False,
        metadata=_meta(
            "Serialise `kind create` between jobs on the same node with a lock file, "
            "for hosts that struggle with concurrent cluster creation."
        ),
    )
    skip_preflight: bool = field(
        default=False,
        metadata=_meta(
            "Skip the node checks (kind, kubectl, runtime, cgroups, inotify, disk) "
            "the runner does before creating a cluster."
        ),
    )
    min_mem_mb: int = field(
        default=300,
        metadata=_meta(
            "Smallest memory request (MiB) sent to Slurm: smaller mem_mb values are "
            "raised to it, since every job runs Python and Snakemake itself."
        ),
    )
    logdir: Optional[str] = field(
        default=None,
        metadata=_meta(
            "Directory for the Slurm job logs "
            f"(default: {DEFAULT_LOGDIR} in the working directory)."
        ),
    )
    keep_successful_logs: bool = field(
        default=False,
        metadata=_meta(
            "Keep the logs of successful jobs (failed jobs' logs are always kept)."
        ),
    )
    init_seconds_before_status_checks: float = field(
        default=1.0,
        metadata=_meta("Seconds after submission before a job's status is first queried."),
    )
    max_status_interval: float = field(
        default=30.0,
        metadata=_meta(
            "Upper bound in seconds for the adaptive interval between status queries "
            "(a tenth of the youngest job's age, at least 3 s)."
        ),
    )
    status_command: str = field(
        default="auto",
        metadata=_meta(
            "How job states are queried: sacct (needs accounting), squeue, or auto "
            "(sacct, falling back to squeue when accounting is unavailable).",
            choices=list(STATUS_COMMANDS),
        ),
    )
    missing_job_timeout: float = field(
        default=120.0,
        metadata=_meta(
            "Seconds a submitted job may be absent from every status answer before it "
            "is reported as failed (it counts as running until then)."
        ),
    )
    cleanup_grace_seconds: int = field(
        default=60,
        metadata=_meta(
            "Seconds before the time limit at which Slurm warns the runner to stop the "
            "workload and delete the cluster (sbatch --signal=B:USR1@N). Less for short "
            "runtimes and none at 2 minutes or less, since Slurm may warn 60 s early. "
            "After scancel the runner has Slurm's KillWait instead."
        ),
    )
    sbatch_extra: Optional[str] = field(
        default=None,
        metadata=_meta(
            "Extra sbatch options for every job, e.g. \"--reservation=r1 --exclusive\". "
            "Options the plugin sets itself (--job-name, --output, --wrap, ...) are refused."
        ),
    )

    def __post_init__(self) -> None:
        validate_settings(self)


def validate_settings(settings: ExecutorSettings) -> None:
    """Reject settings that cannot work, before any job is submitted."""
    if settings.provider not in PROVIDERS:
        raise WorkflowError(
            f"--kindslurm-provider {settings.provider!r} is not supported; "
            f"use one of: {', '.join(PROVIDERS)}"
        )
    if settings.status_command not in STATUS_COMMANDS:
        raise WorkflowError(
            f"--kindslurm-status-command {settings.status_command!r} is not supported; "
            f"use one of: {', '.join(STATUS_COMMANDS)}"
        )
    for name in ("create_timeout", "cleanup_grace_seconds"):
        value = getattr(settings, name)
        if value is None or value <= 0:
            flag = "--kindslurm-" + name.replace("_", "-")
            raise WorkflowError(f"{flag} must be a positive number of seconds, got {value!r}")
    for name in ("init_seconds_before_status_checks", "max_status_interval",
                 "missing_job_timeout", "min_mem_mb"):
        value = getattr(settings, name)
        if value is None or value < 0:
            flag = "--kindslurm-" + name.replace("_", "-")
            raise WorkflowError(f"{flag} must not be negative, got {value!r}")
    if settings.kind_config is not None:
        path = os.path.expanduser(os.path.expandvars(settings.kind_config))
        if not os.path.isfile(path):
            raise WorkflowError(
                f"--kindslurm-kind-config {settings.kind_config!r}: no such file; "
                "give the path of a Kind cluster config (kind.x-k8s.io/v1alpha4)"
            )
    if settings.runtime_host is not None and not RUNTIME_HOST.match(settings.runtime_host):
        raise WorkflowError(
            f"--kindslurm-runtime-host {settings.runtime_host!r} is not a runtime service "
            "URL; give e.g. unix:///run/podman-kind/podman.sock (or tcp://HOST:PORT, "
            "ssh://USER@HOST/PATH)"
        )
    if settings.sbatch_extra:
        try:
            shlex.split(settings.sbatch_extra)
        except ValueError as err:
            raise WorkflowError(
                f"--kindslurm-sbatch-extra {settings.sbatch_extra!r} cannot be parsed "
                f"({err}); quote it like a shell command line"
            ) from err
