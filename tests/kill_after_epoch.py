"""`python tests/kill_after_epoch.py N[:M] ARGS...`: `python -m sherlocked.train ARGS...`, killed with SIGKILL right
after epoch N ends (a kill at a known point, nothing in sherlocked changed). N alone: right after the population's
checkpoint of epoch N is saved; N:M: checkpoints are saved only up to epoch M, and the events written after it are
flushed to disk before the kill (as a full queue or TensorBoard's flush timer would have), the case a resumed run
must cut."""

import os
import runpy
import signal
import sys

from sherlocked.training import checkpoints
from sherlocked.training.trackers import each

KILL_AFTER, _, SAVE_UP_TO = sys.argv.pop(1).partition(":")
save = checkpoints.PopulationCheckpoint.on_train_epoch_end


def save_then_die(self, trainer, module) -> None:
    epoch = trainer.current_epoch + 1
    if not SAVE_UP_TO or epoch <= int(SAVE_UP_TO):
        save(self, trainer, module)
    if epoch == int(KILL_AFTER):
        each(module.trackers, "state")  # every tracker's writes out
        os.kill(os.getpid(), signal.SIGKILL)


checkpoints.PopulationCheckpoint.on_train_epoch_end = save_then_die
sys.argv[0] = "sherlocked.train"
runpy.run_module("sherlocked.train", run_name="__main__")
