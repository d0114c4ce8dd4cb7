"""Trackers: each member of a population a run in every tracker the config names (conf/logger).

    logger=tensorboard (the default) | csv | mlflow | wandb | off | [tensorboard,mlflow] | any Lightning logger

A Tracker holds one tracker's runs for all of a population's members (member k's run is job k's): the module hands
it the members' values once an epoch (`log`), a checkpoint keeps what it needs to go on (`state`), and the
engine ends it with the members' results (`finish`) or their failure (`fail`). One writer a population, so a
tracker may write its K runs in one batch (MLflow). Which class serves a logger's config follows its `_target_`
class (KINDS, by inheritance); any other Lightning logger gets one instance a member (LightningRuns).

What a resumed population's trackers hold equals an uninterrupted run's: each rewinds, or skips, what a killed
run wrote after its checkpoint (TensorBoard truncates event files, CSV keeps its rows then, MLflow and W&B keep
the same run and skip steps they hold).
"""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate

from sherlocked.records.job import Job
from sherlocked.records.results import EPOCH_CURVES, FINAL, Result
from sherlocked.spec.config import hparams, loggers

log = logging.getLogger(__name__)
# (step, {metric: [one value a member]}): what the module logged at one step (an epoch's number for EPOCH_CURVES)
Rows = Sequence[tuple[int, Mapping[str, Sequence[float]]]]


def is_epoch_curve(name: str) -> bool:
    return name in EPOCH_CURVES.values()


class Tracker:
    """One tracker's runs for a population's members; subclasses write them. `saved`: this tracker's `state()` as the
    population's checkpoint kept it (None: the population starts afresh)."""

    def __init__(self, settings: Mapping, jobs: Sequence[Job], saved: Mapping | None):
        self.settings, self.jobs = dict(settings), list(jobs)

    def log(self, rows: Rows) -> None:
        """Each member's values at each step."""

    def histogram(self, tag: str, values, step: int) -> None:
        """Each member's values of one tensor ([K, ...]) at a step: only TensorBoard shows them."""

    def state(self) -> dict:
        """Everything logged so far written out, and what a resumed population needs to go on from here."""
        return {}

    def finish(self, results: Sequence[Result]) -> None:
        """The members' results: their settings, final metrics and status."""

    def fail(self) -> None:
        """The population failed: its runs end as failed."""


def each(trackers: dict[str, Tracker], method: str, *arguments) -> dict[str, Any]:
    """Every tracker's `method`(*arguments), by name. A tracker that fails (a store gone, a full disk, a server
    down) is dropped with a one-line warning and training goes on: result.json, the table and the report never
    depend on a tracker."""
    answers = {}
    for name, tracker in list(trackers.items()):
        try:
            answers[name] = getattr(tracker, method)(*arguments)
        except Exception as error:
            warn(name, "stopped", error)
            del trackers[name]
    return answers


def warn(name: str, what: str, error: Exception) -> None:
    if isinstance(error, InstantiationException) and error.__cause__ is not None:  # what the logger itself raised
        error = error.__cause__
    said = (str(error).strip().splitlines() or [""])[0]
    log.warning(f"logger {name} {what} ({type(error).__name__}: {said}); training goes on without it")


def run_name(job: Job) -> str:
    """A member's run name: its swept values where the sweep named them (sherlocked.records.layout.name_runs), else
    its dir's name."""
    return job.run_name or job.job_dir.name


def shown(job: Job) -> dict[str, Any]:
    """A member's keys and values as every tracker shows them (HParams' names: act1, seed, widths, ...)."""
    return hparams(job.config)


class LightningRuns(Tracker):
    """Any Lightning logger, one instance a member (`member_arguments` adds where each writes)."""

    def __init__(self, settings, jobs, saved):
        super().__init__(settings, jobs, saved)
        self.loggers = [instantiate(self.settings, **self.member_arguments(job)) for job in self.jobs]

    def member_arguments(self, job: Job) -> dict:
        return {}

    def log(self, rows: Rows) -> None:
        for step, metrics in rows:
            for k, logger in enumerate(self.loggers):
                logger.log_metrics({name: values[k] for name, values in metrics.items()}, step=step)

    def state(self) -> dict:
        for logger in self.loggers:
            logger.save()
        return {}

    def finish(self, results: Sequence[Result]) -> None:
        for logger, job, result in zip(self.loggers, self.jobs, results):
            logger.log_hyperparams(shown(job))
            epochs = len(result.history.get("epoch", []))
            logger.log_metrics({FINAL + name: value for name, value in result.final.items()}, step=epochs)
            logger.finalize("success")

    def fail(self) -> None:
        for logger in self.loggers:
            logger.finalize("failed")


# Lightning's logger class -> the Tracker that serves it (module.Class, imported when a config names it: mlflow and
# wandb load only where they are used).
KINDS = {
    "lightning.pytorch.loggers.TensorBoardLogger": "tensorboard_runs.TensorBoardRuns",
    "lightning.pytorch.loggers.CSVLogger": "csv_runs.CSVRuns",
    "lightning.pytorch.loggers.MLFlowLogger": "mlflow_runs.MLflowRuns",
    "lightning.pytorch.loggers.WandbLogger": "wandb_runs.WandbRuns",
}


def tracker_class(target: str) -> type[Tracker]:
    """The Tracker for a logger's `_target_`: the kind its class derives from (a subclass of MLFlowLogger is served
    as MLflow), else LightningRuns."""
    cls = get_class(target)
    for base, tracker in KINDS.items():
        if issubclass(cls, get_class(base)):
            return get_class(f"{__name__}.{tracker}")
    return LightningRuns


def open_trackers(config: Mapping, jobs: Sequence[Job], saved: Mapping | None) -> dict[str, Tracker]:
    """The trackers a population's config names, each over all its members; `saved`: their states from its
    checkpoint, by name (None: it starts afresh). One that cannot open (a server down, a store it cannot write) is
    left out with a one-line warning, as one that fails later is (each): the population trains all the same."""
    trackers = {}
    for name, settings in loggers(config).items():
        state = None if saved is None else saved.get(name, {})
        try:
            trackers[name] = tracker_class(settings["_target_"])(settings, jobs, state)
        except Exception as error:
            warn(name, "could not start", error)
    return trackers
