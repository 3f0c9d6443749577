"""snakemake-executor-plugin-kindslurm: run every Snakemake job on Slurm inside a
throw-away Kind (Kubernetes) cluster that is always deleted afterwards.

Snakemake reads `Executor`, `ExecutorSettings` and `common_settings` from this
module. They are loaded on first access: the lifecycle runner
(`python -m snakemake_executor_plugin_kindslurm.runner`) starts in every Slurm
job and must not pay for importing Snakemake's interfaces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from snakemake_interface_executor_plugins.settings import CommonSettings

    from .executor import Executor
    from .settings import ExecutorSettings

__all__ = ["Executor", "ExecutorSettings", "__version__", "common_settings"]


def _common_settings() -> CommonSettings:
    from snakemake_interface_executor_plugins.settings import CommonSettings

    return CommonSettings(
        non_local_exec=True,
        implies_no_shared_fs=False,
        job_deploy_sources=False,
        pass_default_storage_provider_args=True,
        pass_default_resources_args=True,
        # sbatch exports the submitting environment to the job, so --envvars need
        # no `export A=... &&` prefix in the job command.
        pass_envvar_declarations_to_cmd=False,
        auto_deploy_default_storage_provider=False,
        # The executor decides itself when a job is first checked
        # (--kindslurm-init-seconds-before-status-checks).
        init_seconds_before_status_checks=0,
        pass_group_args=True,
    )


def __getattr__(name: str) -> Any:
    if name == "Executor":
        from .executor import Executor

        value: Any = Executor
    elif name == "ExecutorSettings":
        from .settings import ExecutorSettings

        value = ExecutorSettings
    elif name == "common_settings":
        value = _common_settings()
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
