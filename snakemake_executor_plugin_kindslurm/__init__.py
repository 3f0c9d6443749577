"""snakemake-executor-plugin-kindslurm: run every Snakemake job on Slurm inside a
throw-away Kind (Kubernetes) cluster that is always deleted afterwards."""

from snakemake_interface_executor_plugins.settings import CommonSettings

from ._version import __version__
from .executor import Executor
from .settings import ExecutorSettings

common_settings = CommonSettings(
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

__all__ = ["Executor", "ExecutorSettings", "__version__", "common_settings"]
