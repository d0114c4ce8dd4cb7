"""What a user waits for: real multiruns of the command line, timed whole (sherlocked.bench).

    python -m sherlocked.bench --sweep-jobs 576      # overhead measured at 64 and 576 one-step jobs

- overhead(): the same one-step sweep at two sizes; the difference in CPU time (user + system
  of the whole command) divided by the difference in jobs is what one more job costs, and the
  phases the launcher counts (sherlocked.runtime.phases) split it: everything but `steps` is overhead.
- end_to_end(): the benchmark's own shape as one real multirun, command start to last result.
"""

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sherlocked.records import layout
from sherlocked.runtime.phases import PHASES

ACTS = ("relu", "tanh", "sigmoid", "selu")  # the study's, for every path of the benchmark


def grid(jobs: int) -> list[str]:
    """Sweep overrides of about `jobs` jobs: activations over 1-3 layers (4 each), then seeds."""
    layers = 0
    while layers < 3 and 4 ** (layers + 1) <= jobs:
        layers += 1
    seeds = max(1, jobs // 4**layers)
    acts = [f"act{3 - i}={','.join(ACTS)}" for i in range(layers)]
    return [*acts, f"seed=range({seeds})"]


def multirun(overrides: list[str], device: str) -> dict:
    """One real `python -m sherlocked.train -m hydra/launcher=population ...`: wall and CPU seconds, phases."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable,
            "-m",
            "sherlocked.train",
            "-m",
            "hydra/launcher=population",
            f"trainer.accelerator={'gpu' if device == 'cuda' else 'cpu'}",
            f"hydra.sweep.dir={tmp}/sweep",
            *overrides,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "SHERLOCKED_PHASES": f"{tmp}/phases.json"}
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        phases = json.loads(Path(f"{tmp}/phases.json").read_text())
        results = len(list(Path(f"{tmp}/sweep").rglob(layout.RESULT)))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"jobs": phases["jobs"], "results": results, "wall_s": wall, "cpu_s": cpu, "phases_cpu_s": phases["cpu_s"]}


def overhead(dataset: str, device: str, small: int, large: int, model: str = "mlp") -> dict:
    """What one more job costs: one-step sweeps of two sizes, side by side."""
    one_step = [
        f"model={model}",
        f"dataset={dataset}",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
        "+trainer.limit_val_batches=1",
        "diagnostics=off",
    ]
    runs = [multirun([*one_step, *grid(jobs)], device) for jobs in (small, large)]
    a, b = runs
    extra = b["jobs"] - a["jobs"]
    per_phase = {p: (b["phases_cpu_s"][p] - a["phases_cpu_s"][p]) / extra for p in PHASES}
    marginal = (b["cpu_s"] - a["cpu_s"]) / extra
    return {
        "runs": runs,
        "marginal_cpu_s_per_job": marginal,
        "marginal_phase_cpu_s_per_job": per_phase,
        # the whole command's marginal CPU, less what the steps and test batches themselves took
        "framework_overhead_s_per_job": marginal - per_phase["steps"],
    }


def end_to_end(dataset: str, device: str, jobs: int, epochs: int, steps: int, model: str = "mlp") -> dict:
    """The benchmark's shape as a user runs it: one multirun, command start to the last result.json."""
    overrides = [f"model={model}", f"dataset={dataset}", f"trainer.max_epochs={epochs}", *grid(jobs)]
    if steps:
        overrides.append(f"+trainer.limit_train_batches={steps}")
    return multirun(overrides, device)
