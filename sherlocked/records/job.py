"""One job, as every part sees it: made once by the sweep's plan (or by a single run), trained by the
engine, and handed back to Hydra's callbacks with its result.

    python -c "from sherlocked.records.job import Job; help(Job)"

Torch-free, Hydra-free and small: what a worker process needs travels with it (config, dirs,
overrides); what only the driver needs (the job's Hydra config and .hydra/ files) the Hydra
adapter keeps by the job's index (sherlocked.sweep.plan.Plan.hydra).
"""

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sherlocked.records.results import Result
from sherlocked.spec.config import identity_key


@dataclass
class Job:
    config: dict  # the resolved task config: what the engine trains and result.json stores
    job_dir: Path
    overrides: list[str] = field(default_factory=list)  # its command-line overrides, as Hydra names its dir
    index: int = 0  # its number in the sweep (Hydra's hydra.job.num)
    sweep_dir: Path | None = (
        None  # where its population keeps what members share (sherlocked.records.layout); None: none
    )
    events_dir: Path | None = None  # its TensorBoard run; None: <job dir>/<the logger's name>
    run_name: str | None = None  # its runs' name in the trackers (its swept values); None: its dir's name
    finished: Result | None = None  # its result, where an earlier run finished it (so it is not trained again)
    # An earlier job of the same batch with the same identity (a seed listed twice, a default spelled out): this
    # one is not trained, and gets that one's result.
    same_as: "Job | None" = field(default=None, repr=False)
    # Composed on its own, not derived from its group's one composition (sherlocked.hydra_side.adapter): the jobs of its
    # group may differ beyond their overrides, so the plan compares their configs before training them together.
    composed_alone: bool = False

    @classmethod
    def of(cls, cfg: DictConfig, job_dir: Path, overrides: Sequence[str] = (), **more) -> "Job":
        """A job of a composed config (resolved here)."""
        return cls(OmegaConf.to_container(cfg, resolve=True), Path(job_dir), list(overrides), **more)

    @functools.cached_property
    def identity(self) -> str:
        """What the job computes, however its overrides were typed (sherlocked.spec.config.identity_key)."""
        return identity_key(self.config)

    def __getstate__(self) -> dict:
        """A worker (a process, a Ray task, a SLURM element) gets the job without the batch's other jobs."""
        return {**self.__dict__, "same_as": None}


def population_task(task: Callable) -> Callable:
    """Marks a Hydra task function as sherlocked's (it trains the job its config describes, and nothing else), so
    the population launcher may train its jobs together instead of calling it once a job."""
    task.trains_populations = True
    return task
