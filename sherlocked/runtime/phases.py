"""Where a sweep's CPU time goes, phase by phase: compose, dirs, build, loop, steps, write.

    SHERLOCKED_PHASES=phases.json python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k seed=0,1

- compose: Hydra composing (or deriving) each job's config;  dirs: job dirs and .hydra/ files;
- build: data module, models, loggers, trainer;  loop: Lightning's fit besides the steps
  (its loop, callbacks, metric logging);  steps: training steps and test batches;
- write: HParams, TensorBoard's last events, result.json.
Everything but `steps` is the framework's overhead. The population launcher logs the split at
the end of a sweep, and writes it as JSON where SHERLOCKED_PHASES names a file (the benchmark
reads it). Counted in the process that trains: a sweep on worker processes splits only its
preparation.
"""

import contextlib
import json
import os
import time
from collections import Counter
from pathlib import Path

PHASES = ("compose", "dirs", "build", "loop", "steps", "write")
cpu: Counter = Counter()  # CPU seconds of this process (all its threads) per phase; "fit" = loop + steps


def split() -> dict[str, float]:
    """CPU seconds per phase so far."""
    return {phase: cpu["fit"] - cpu["steps"] if phase == "loop" else cpu[phase] for phase in PHASES}


@contextlib.contextmanager
def timed(phase: str):
    start = time.process_time()
    try:
        yield
    finally:
        cpu[phase] += time.process_time() - start


def summary(jobs: int) -> str:
    per_job = ", ".join(f"{phase} {1e3 * seconds / max(jobs, 1):.1f}" for phase, seconds in split().items())
    return f"CPU ms per job: {per_job}"


def save(jobs: int) -> None:
    """Write the phases where SHERLOCKED_PHASES asks for them."""
    if path := os.environ.get("SHERLOCKED_PHASES"):
        Path(path).write_text(json.dumps({"jobs": jobs, "cpu_s": split()}))
