"""`python tests/signal_at_step.py N NAME ARGS...`: `python -m sherlocked.train ARGS...`, sent signal NAME (TERM, USR2)
by itself during training step N (counted from 1, over the whole run), as a scheduler's notice arrives: in the middle
of a step. Nothing in sherlocked is changed but the moment the signal comes."""

import os
import runpy
import signal
import sys

from sherlocked.training.module import PopulationModule

AT, NAME = int(sys.argv.pop(1)), sys.argv.pop(1)
step = PopulationModule.training_step


def signalled_step(self, index, batch_idx):
    if self.global_step + 1 == AT:
        os.kill(os.getpid(), getattr(signal, f"SIG{NAME}"))
    return step(self, index, batch_idx)


PopulationModule.training_step = signalled_step
sys.argv[0] = "sherlocked.train"
runpy.run_module("sherlocked.train", run_name="__main__")
