"""Hydra launcher `hydra/launcher=population`: trains a sweep's jobs as populations, one worker per GPU.

    python -m sherlocked.train -m hydra/launcher=population act1=relu,tanh act2=sigmoid,relu seed=range(9)

Thin on purpose: Hydra imports every plugin module at start-up, so the work (and torch)
lives in sherlocked.launcher, imported when a sweep is launched.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

# Registers the resolver conf/train.yaml names job dirs with, for every way Hydra composes it (light: no torch).
import sherlocked.config  # noqa: F401


@dataclass
class PopulationLauncherConf:
    _target_: str = "hydra_plugins.sherlocked_launcher.population_launcher.PopulationLauncher"
    # Most members trained together in one population (bigger groups are split); 0 = no limit,
    # null = measured default for the device (sherlocked.launcher.default_max_members).
    max_members: int | None = None
    # Worker processes: 0 = one per visible GPU (in-process on a CPU-only machine or with one GPU).
    workers: int = 0


ConfigStore.instance().store(
    group="hydra/launcher", name="population", node=PopulationLauncherConf, provider="sherlocked"
)


class PopulationLauncher(Launcher):
    # Every job is composed or derived, and checked, before any job dir is written: the sherlocked
    # sweeper need not compose each job beforehand (see sherlocked_sweeper.py).
    checks_every_job = True

    def __init__(self, max_members: int | None = None, workers: int = 0) -> None:
        self.max_members, self.workers = max_members, workers
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sherlocked.launcher import launch

        return launch(self, job_overrides, initial_job_idx)
