"""Snakemake's own executor-plugin test harness, against the real Slurm.

The harness's workflows do not set kind_cluster, so every job gets a Kind cluster
from the stand-in node image (a real `kind create`/`kind delete` per job)."""

from __future__ import annotations

import pytest
from snakemake.common.tests import TestWorkflowsLocalStorageBase

from snakemake_executor_plugin_kindslurm import ExecutorSettings


@pytest.mark.integration
@pytest.mark.usefixtures("slurm")
class TestWorkflowsWithKindClusters(TestWorkflowsLocalStorageBase):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _image(self, kind_ready: str) -> None:
        self.image = kind_ready

    def get_executor(self) -> str:
        return "kindslurm"

    def get_executor_settings(self) -> ExecutorSettings:
        return ExecutorSettings(
            node_image=self.image,
            init_seconds_before_status_checks=1,
        )
