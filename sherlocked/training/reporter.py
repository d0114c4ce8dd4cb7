"""Where a population in training stands, in its progress file (sherlocked.records.population_progress), for the sweep's
live line (sherlocked.sweep.progress): written at every test pass and at most once a second in between.
A single run's progress bar (EpochBar) counts its epochs as the rest of sherlocked does, from 1.

Writing it reads only what the host already holds, so no step waits for the device.
"""

import contextlib
import math
import os
import socket
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from sherlocked.records.population_progress import PopulationProgress


class Reporter(L.Callback):
    """Writes the population's progress file: at each test pass, and at most every `every_s` seconds between."""

    def __init__(self, path: Path, jobs: list[str] = (), every_s: float = 1.0):
        """jobs: each member's overrides, as one line (the sweep counts each job once, trained or in training)."""
        self.path, self.jobs, self.every_s = Path(path), list(jobs), every_s
        self.started = self.last = time.time()
        self.reported: PopulationProgress | None = None
        self.where = f"{socket.gethostname()}, {os.environ.get('CUDA_VISIBLE_DEVICES') or 'cpu'}"

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.write(trainer, module)  # in the table from its first step

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *args) -> None:
        if time.time() - self.last >= self.every_s:
            self.write(trainer, module)

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.write(trainer, module, diverged=int((~module.alive).sum()))  # one wait an epoch, after the test

    def write(self, trainer: L.Trainer, module: L.LightningModule, diverged: int | None = None) -> None:
        accuracies = module.history["test_acc"]
        last = [a for a in accuracies[-1] if math.isfinite(a)] if accuracies else []
        if diverged is None:  # between test passes: as the last one said
            diverged = self.reported.diverged if self.reported else 0
        self.reported = PopulationProgress(
            members=len(module.net),
            epoch=trainer.current_epoch + 1,
            epochs=trainer.max_epochs,
            epochs_done=len(accuracies),
            step=trainer.global_step,
            steps=trainer.num_training_batches * trainer.max_epochs,
            started=self.started,
            updated=time.time(),
            acc=[min(last), max(last)] if last else None,
            diverged=diverged,
            where=self.where,
            jobs=self.jobs,
            pid=os.getpid(),
        )
        with contextlib.suppress(OSError):  # progress is for the eye: training goes on without it
            self.reported.write(self.path)
        self.last = time.time()


class EpochBar(RichProgressBar):
    """Lightning's progress bar, its epochs counted from 1 (it says "Epoch 0/0" for a one-epoch run, where
    result.json, TensorBoard and the sweep's lines say epoch 1 of 1)."""

    def _get_train_description(self, current_epoch: int) -> str:  # Lightning's counts from 0
        epochs = "" if self.trainer.max_epochs is None else f"/{self.trainer.max_epochs}"
        return f"{f'Epoch {current_epoch + 1}{epochs}':{len(self.validation_description)}}"  # as wide as its other bar
