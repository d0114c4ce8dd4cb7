"""Population checkpoints: a run killed mid-training resumes from its population's last saved epoch.

    <sweep dir>/.checkpoints/<population>.ckpt   (sherlocked.layout: a single run keeps it in its run dir)

A population is named by its members' identities (their configs without where files live), in
order: the same population formed again finds its checkpoint, any other change (another member,
value or order) starts afresh. Lightning's own checkpoint (weights, optimiser
state, loop counters, each member's data order, the module's curves) is saved at an epoch's
end, at most once every `checkpoint_every_s` seconds (0: every epoch; null: never), to a
temporary file that is then renamed, so a kill leaves the previous checkpoint or the new one
whole. It is deleted once every member's result.json is written.
"""

import logging
import os
import time
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint

from sherlocked.layout import EVENT_FILES
from sherlocked.results import discard, replacing

log = logging.getLogger(__name__)


class CheckpointUnreadable(RuntimeError):
    """The storage could not read a checkpoint, which may well be whole: it is kept; the message is one line."""


def saved_epochs(path: Path) -> int:
    """Epochs the checkpoint at `path` holds (0: none). One proven damaged (read whole, and no checkpoint) is
    removed, with a warning; one the storage could not read stops the population, and is kept."""
    if not path.is_file():
        return 0
    try:  # mmap: the counters are read, the weights are not
        return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]) + 1
    except OSError as error:  # EIO, EACCES, a stale NFS handle...: nothing says the checkpoint is damaged
        raise CheckpointUnreadable(
            f"checkpoint {path} could not be read ({error.strerror or error}); it is kept: run the same command "
            "again once the storage reads it"
        ) from None
    except Exception as error:  # read, and not a checkpoint: cut short or damaged
        log.warning(f"checkpoint {path} is damaged ({type(error).__name__}: {error}); training from the start")
        discard(path)
        return 0


def rewind_events(path: Path) -> None:
    """The members' TensorBoard event files as they stood when the checkpoint at `path` was saved: what a killed
    run wrote after it is cut (its event files truncated to their sizes then, files begun after it removed), so
    the resumed run's events equal an uninterrupted run's. (TensorBoard's purge_step cannot: a run's epoch
    curves count epochs and its step curves steps, and a purge drops every tag from one step on.)"""
    events = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["population"].get("events", {})
    for folder in {Path(name).parent for name in events}:
        for file in folder.glob(EVENT_FILES):
            if str(file) not in events:
                file.unlink()
            elif file.stat().st_size > events[str(file)]:
                os.truncate(file, events[str(file)])  # events are appended whole: the size then ends one


class EpochCheckpoint(Checkpoint):
    """Saves the population at an epoch's end, at most once every `every_s` seconds.

    A Checkpoint, so that Lightning calls it after the module's own epoch-end hook: the
    epoch's curves and TensorBoard events are complete when it saves.
    """

    def __init__(self, path: Path, every_s: float):
        self.path, self.every_s = Path(path), every_s
        self.last = time.monotonic()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if time.monotonic() - self.last < self.every_s:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(self.path) as temporary:
            trainer.save_checkpoint(temporary, weights_only=False)  # all of it (unsaid, Lightning logs its default)
        self.last = time.monotonic()
