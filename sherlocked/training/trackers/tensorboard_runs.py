"""TensorBoard: each member's run, its curves and histograms as event files, its HParams session and hparams.yaml.

    <sweep dir>/tensorboard/<its swept values>/events.out.tfevents.*   (a single run: <run dir>/tensorboard/)

The sweep's one experiment summary, which names the values every key took, is written by
sherlocked.records.dashboard at the end of the sweep; a run writes only its session. Its metrics are the
last values of its curves (accuracy/test, ...): no scalar exists for HParams alone. A resumed population
cuts what a killed run wrote after its checkpoint (rewind); one that starts afresh removes an earlier
attempt's events (forget): TensorBoard would show those steps twice.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from lightning.pytorch.loggers import TensorBoardLogger

from sherlocked.records.dashboard import session_summaries
from sherlocked.records.layout import EVENT_FILES
from sherlocked.records.results import Result
from sherlocked.records.yaml_text import to_yaml
from sherlocked.training.diagnostics import add_histogram
from sherlocked.training.trackers import LightningRuns, shown


class TensorBoardRuns(LightningRuns):
    def __init__(self, settings, jobs, saved):
        super().__init__(settings, jobs, saved)
        if saved is None:
            forget_events(Path(logger.log_dir) for logger in self.loggers)
        else:
            rewind_events(saved.get("events", {}))

    def member_arguments(self, job) -> dict:
        if job.events_dir is None:  # a single run: <run dir>/<the config's name>
            return {"save_dir": str(job.job_dir)}
        return {"save_dir": str(job.events_dir.parent), "name": job.events_dir.name, "version": ""}

    def histogram(self, tag: str, values, step: int) -> None:
        for k, logger in enumerate(self.loggers):
            add_histogram(logger.experiment, tag, values[k], step)

    def state(self) -> dict:
        """How far each event file reached (flushed first: a checkpoint must not hold steps a kill would lose)."""
        for logger in self.loggers:
            logger.experiment.flush()
        files = (path for logger in self.loggers for path in Path(logger.log_dir).glob(EVENT_FILES))
        return {"events": {str(path): path.stat().st_size for path in files}}

    def finish(self, results: Sequence[Result]) -> None:
        for logger, job in zip(self.loggers, self.jobs):
            log_session(logger, shown(job))
            logger.finalize("success")


def log_session(logger: TensorBoardLogger, hparams: Mapping) -> None:
    """One run's HParams session (its keys and values; its metrics are its curves' last values) and hparams.yaml."""
    values = {
        name: value if isinstance(value, bool | int | float | str) else str(value) for name, value in hparams.items()
    }
    logger.hparams.update(values)
    # hparams.yaml as Lightning's save_hparams_to_yaml writes it (OmegaConf's YAML), but emitted by libyaml:
    # Lightning's write, through OmegaConf.save, took a few ms a run; it leaves a file that exists alone.
    path = Path(logger.log_dir) / logger.NAME_HPARAMS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(dict(logger.hparams)), encoding="utf-8")
    session_start, session_end = session_summaries(values)  # not its experiment: the sweep writes that
    writer = logger.experiment._get_file_writer()
    writer.add_summary(session_start)
    writer.add_summary(session_end)


def rewind_events(events: Mapping[str, int]) -> None:
    """The members' event files as they stood when the checkpoint was saved (`events`: file -> its size then): what
    a killed run wrote after it is cut (truncated to those sizes, files begun after it removed), so the resumed
    run's events equal an uninterrupted run's. (TensorBoard's purge_step cannot: a run's epoch curves count epochs
    and its step curves steps, and a purge drops every tag from one step on.)"""
    for folder in {Path(name).parent for name in events}:
        for file in folder.glob(EVENT_FILES):
            if str(file) not in events:
                file.unlink()
            elif file.stat().st_size > events[str(file)]:
                os.truncate(file, events[str(file)])  # events are appended whole: the size then ends one


def forget_events(folders) -> None:
    """The event files in the members' TensorBoard folders removed, before a population that starts afresh writes
    its own: an earlier attempt at the same jobs (stopped before its first checkpoint, or trained elsewhere
    with another population or device) wrote them, and TensorBoard would show each step twice."""
    for folder in folders:
        for file in folder.glob(EVENT_FILES):
            file.unlink(missing_ok=True)
