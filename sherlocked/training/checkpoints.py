"""Population checkpoints: a run killed mid-training resumes where its population was last saved.

    <sweep dir>/.checkpoints/<population>.ckpt   (sherlocked.records.layout: a single run keeps it in its run dir)

A population is named by its members' identities (their configs without where files live), in
order: the same population formed again finds its checkpoint, any other change (another member,
value or order) starts afresh. Lightning's own checkpoint (weights, optimiser
state, loop counters, each member's data order, the module's curves) is saved at an epoch's
end, at most once every `checkpoint_every_s` seconds (0: every epoch; null: never), to a
temporary file that is then renamed, so a kill leaves the previous checkpoint or the new one
whole. It is deleted once every member's result.json is written.

A stop signal (SIGTERM: a scheduler's preemption notice, scancel, a cloud's shutdown, `kill`;
SIGUSR2: submitit's time-limit signal) saves the population at once: at the end of the step it
arrived in, so the resumed run loses nothing, and the process then ends as the signal asks
(Stopped.end). Why the step's end and not the epoch's: an epoch of a large population on a
large dataset can outlast the grace a scheduler gives (SLURM's KillWait, 30 s by default),
while a step takes milliseconds and its save about a second. A signal in an epoch's last step
or its test pass is saved at the epoch's end, after the test pass: the shortest wait there is.
"""

import logging
import sys
import time
from pathlib import Path
from typing import NoReturn

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from sherlocked.runtime import signals
from sherlocked.runtime.atomic import discard, replacing

log = logging.getLogger(__name__)


class CheckpointUnreadable(RuntimeError):
    """The storage could not read a checkpoint, which may well be whole: it is kept; the message is one line."""


def saved_at(path: Path) -> tuple[int, int]:
    """The epochs and steps the checkpoint at `path` holds ((0, 0): none). One proven damaged (read whole, and no
    checkpoint) is removed, with a warning; one the storage could not read stops the population, and is kept."""
    if not path.is_file():
        return 0, 0
    try:  # mmap: the counters are read, the weights are not
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        epochs = saved["population"].get("epochs", int(saved["epoch"]) + 1)  # without it: saved at an epoch's end
        return int(epochs), int(saved["global_step"])
    except OSError as error:  # EIO, EACCES, a stale NFS handle...: nothing says the checkpoint is damaged
        raise CheckpointUnreadable(
            f"checkpoint {path} could not be read ({error.strerror or error}); it is kept: run the same command "
            "again once the storage reads it"
        ) from None
    except Exception as error:  # read, and not a checkpoint: cut short or damaged
        log.warning(f"checkpoint {path} is damaged ({type(error).__name__}: {error}); training from the start")
        discard(path)
        return 0, 0


def tracker_states(path: Path) -> dict[str, dict]:
    """What each tracker kept in the checkpoint at `path` to go on from it (sherlocked.training.trackers), by name.
    Checkpoints from before trackers kept only TensorBoard's event sizes."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["population"]
    return state.get("trackers", {"tensorboard": {"events": state.get("events", {})}})


class Stopped(BaseException):
    """A stop signal ended the fit once the population was saved. Not a training error (nothing is recorded
    failed): the process ends as the signal asks (end)."""

    def __init__(self, signum: int, step: int, path: Path | None):
        super().__init__(signum, step, path)
        self.signum, self.step, self.path = signum, step, path

    def end(self, resume_command: str | None = None) -> NoReturn:
        """Say what was saved and how to go on, then end as the signal asks (signals.end_by), with the handler the
        process had before the fit (Lightning restores it as the fit ends). resume_command: the command that goes
        on from the saved population where the same command would not find it (a single run's, which starts in a
        new run dir); None: the same command goes on (a sweep's)."""
        if self.path is None:  # Lightning's own handler stopped it: no checkpoint to save, or before training began
            said = f"at step {self.step} with nothing new saved"
            go_on = "run the same command again to " + ("go on" if resume_command is None else "train from the start")
        else:
            said = f"after step {self.step}; the population is saved in {self.path}"
            go_on = "run the same command again to go on" if resume_command is None else f"go on with: {resume_command}"
        print(f"sherlocked: {signals.name(self.signum)} stopped training {said}: {go_on}", file=sys.stderr)
        signals.end_by(self.signum)


class PopulationCheckpoint(Checkpoint):
    """Saves the population at an epoch's end, at most once every `every_s` seconds, and at once on a stop signal.

    A Checkpoint, so that Lightning calls it after the module's own epoch-end hook: the
    epoch's curves and TensorBoard events are complete when it saves. Its signal handlers
    replace Lightning's for the fit (Lightning's SIGTERM handler would stop the fit at a
    step's end without saving, or in the middle of the test pass).
    """

    def __init__(self, path: Path, every_s: float):
        self.path, self.every_s = Path(path), every_s
        self.last = time.monotonic()
        self.before: dict[int, object] = {}  # the process's handlers before the fit
        self.stop_signal: int | None = None

    def setup(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        self.before = signals.handlers()

    def on_sanity_check_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.listen()

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.listen()  # Lightning set its own handlers as the fit began (Lightning restores self.before at its end)

    def listen(self) -> None:
        signals.listen(self.noted, self.before)

    def noted(self, signum: int, frame) -> None:
        """The handler: note the signal; the step under way finishes, then the population is saved."""
        self.stop_signal = self.stop_signal or signum

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
        last = trainer.fit_loop.epoch_loop.batch_progress.current.processed >= trainer.num_training_batches
        if self.stop_signal and not last:  # in an epoch's last step: saved at the epoch's end, after its test pass
            self.stop(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.stop_signal:
            self.stop(trainer)
        if time.monotonic() - self.last >= self.every_s:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(self.path) as temporary:
            trainer.save_checkpoint(temporary, weights_only=False)  # all of it (unsaid, Lightning logs its default)
        self.last = time.monotonic()

    def stop(self, trainer: L.Trainer) -> NoReturn:
        self.save(trainer)
        raise Stopped(self.stop_signal, trainer.global_step, self.path)
