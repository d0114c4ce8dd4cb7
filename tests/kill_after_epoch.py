"""`python tests/kill_after_epoch.py N ARGS...`: `python -m sherlocked.train ARGS...`, killed with SIGKILL right
after the population's checkpoint of epoch N is saved (a kill at a known point, nothing in sherlocked changed)."""

import os
import runpy
import signal
import sys

from sherlocked.training import checkpoints

KILL_AFTER = int(sys.argv.pop(1))
save = checkpoints.EpochCheckpoint.on_train_epoch_end


def save_then_die(self, trainer, module) -> None:
    save(self, trainer, module)
    if trainer.current_epoch + 1 == KILL_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)


checkpoints.EpochCheckpoint.on_train_epoch_end = save_then_die
sys.argv[0] = "sherlocked.train"
runpy.run_module("sherlocked.train", run_name="__main__")
