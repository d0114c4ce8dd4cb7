"""Hydra launcher `hydra/launcher=population`: trains a sweep's jobs as populations, one worker per GPU.

    python -m sherlocked.train -m hydra/launcher=population act1=relu,tanh act2=sigmoid,relu seed=range(9)

Thin on purpose: Hydra imports every plugin module at start-up, so the work lives in
sherlocked.sweep (plan, then run), imported when a sweep is launched.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

import sherlocked.hydra_side.usage  # noqa: F401

# Register the resolvers conf/train.yaml names job dirs and --help with, for every way Hydra composes it (no torch).
import sherlocked.spec.config  # noqa: F401
from sherlocked.hydra_side.adapter import basic_launcher
from sherlocked.records import layout


@dataclass
class RayConf:
    address: str | None = None  # null: a local Ray started for the sweep; auto or ray://host:port: a cluster
    init: dict[str, Any] = field(default_factory=dict)  # more ray.init arguments, e.g. num_cpus for a local Ray


@dataclass
class SubmititConf:
    cluster: str | None = None  # slurm, local (this machine, one GPU per element) or debug; null: SLURM if found
    folder: str = layout.submitit_folder("${hydra.sweep.dir}")  # submitit's logs and pickles, per job
    partition: str | None = None
    gpus_per_node: int | None = None  # null: gpus_per_population, rounded up
    cpus_per_task: int | None = None  # null: cpus_per_population
    mem_gb: int | None = None
    timeout_min: int = 60
    signal_delay_s: int = 90  # SLURM signals an element this long before timeout_min: it is requeued and resumes
    array_parallelism: int = 256  # array elements running at once (on cluster=local: at once on this machine)
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # any other sbatch option
    setup: list[str] = field(default_factory=list)  # shell lines run before each element, e.g. module load


@dataclass
class PopulationLauncherConf:
    _target_: str = "hydra_plugins.sherlocked_launcher.population_launcher.PopulationLauncher"
    # Most members trained together in one population (bigger groups are split); 0 = no limit,
    # null = measured default for the device (sherlocked.sweep.devices.default_max_members).
    max_members: int | None = None
    # Local worker processes: 0 = one per visible GPU (in-process on a CPU-only machine or with one GPU).
    workers: int = 0
    # Where populations train: local (this machine), ray (a Ray cluster), submitit (SLURM): sherlocked.sweep.backends.
    backend: str = "local"
    gpus_per_population: float | None = None  # ray and submitit; null: 1 when training on GPUs, else 0
    cpus_per_population: int = 1
    max_retries: int = 3  # ray: attempts after a worker or node dies; submitit: requeues after preemption
    # Print the plan (populations, memory per device, time, disk) and exit, writing and training nothing;
    # python -m sherlocked.train -m --plan ... sets it.
    plan: bool = False
    ray: RayConf = field(default_factory=RayConf)
    submitit: SubmititConf = field(default_factory=SubmititConf)


ConfigStore.instance().store(
    group="hydra/launcher", name="population", node=PopulationLauncherConf, provider="sherlocked"
)


class PopulationLauncher(Launcher):
    """Batches sherlocked's own task (a task function marked sherlocked.records.job.population_task) into
    populations; runs any other task function exactly as Hydra's basic launcher, so it can be a user's default."""

    def __init__(
        self,
        max_members: int | None = None,
        workers: int = 0,
        backend: str = "local",
        gpus_per_population: float | None = None,
        plan: bool = False,
        **engine_settings: Any,  # cpus_per_population, max_retries, ray, submitit: read from the config
    ) -> None:
        self.max_members, self.workers, self.backend = max_members, workers, backend
        self.gpus_per_population, self.plan = gpus_per_population, plan
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    @property
    def checks_every_job(self) -> bool:
        """Every job of sherlocked's task is composed or derived, and checked, before any job dir is written: the
        sherlocked sweeper need not compose each job beforehand (see sherlocked_sweeper.py)."""
        return getattr(self.task_function, "trains_populations", False)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if not self.checks_every_job:  # any other task: Hydra's basic launcher, its job dirs, logs and callbacks
            basic = basic_launcher()
            basic.setup(hydra_context=self.hydra_context, task_function=self.task_function, config=self.config)
            return basic.launch(job_overrides, initial_job_idx)
        from sherlocked.sweep.run import launch

        return launch(self, job_overrides, initial_job_idx)
