"""Helpers that run inside Ray's and submitit's worker processes during the backend tests."""

import os
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger

# A sweep's steps paced (+trainer.callbacks=[...]); its processes import tests/ from the checkout (PYTHONPATH).
PACED = "+trainer.callbacks=[{_target_:tests.ray_helpers.Paced,seconds:0.05}]"


class KillOnce(TensorBoardLogger):
    """A TensorBoard logger whose first construction anywhere kills its process, as a node failure would."""

    def __init__(self, marker: str, **kwargs):
        if not Path(marker).exists():
            Path(marker).touch()
            os._exit(1)
        super().__init__(**kwargs)


class Paced(Callback):
    """Each training step lasts at least `seconds` (it sleeps what the step left of them): a sweep that trains long
    enough to act on (cancel it, requeue it, signal it, kill it) at the CPU cost of a few epochs, and as long on a fast
    machine as on a slow one. The numbers are a run's without it."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.started = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.started = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(max(0.0, self.started + self.seconds - time.monotonic()))
