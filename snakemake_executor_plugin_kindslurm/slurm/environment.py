"""The environment sbatch runs in.

A workflow started inside an allocation (salloc, an interactive job, or a job
that runs Snakemake) inherits SLURM_* and SBATCH_* variables. sbatch reads
SBATCH_* as defaults for its options and the job would inherit SLURM_* values
of the outer allocation (memory per CPU, node list, job id ...), so they are
removed before calling sbatch. SLURM_CONF is kept: it says which cluster to use.
"""

from __future__ import annotations

from collections.abc import Mapping

KEEP = frozenset({"SLURM_CONF", "SLURM_CLUSTERS"})


def clean_slurm_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if key in KEEP or not key.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_"))
    }
