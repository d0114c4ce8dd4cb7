"""A sweep's driver stays small as the sweep grows: its peak memory follows the populations in flight, not the jobs."""

import subprocess
import sys

import pytest

from tests.conftest import SMALL

pytestmark = pytest.mark.slow  # sweeps of 2 to 16 populations measured

# Runs the command given after it, then prints the command's peak RSS in KB.
PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True, check=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_kb(tmp_path, data_root, seeds: int) -> int:
    """Peak RSS (KB) of a one-step sweep of the study's MLP (784-500-256-10: 50 MB of weights, gradients and
    momentum a population of 8) over 8 triples x `seeds`, in populations of 8."""
    command = [sys.executable, "-m", "sherlocked.train", "-m", "hydra/launcher=population", *SMALL]
    command += ["hydra.launcher.max_members=8", "trainer.max_epochs=1", "+trainer.limit_train_batches=1"]
    command += ["+trainer.limit_val_batches=1", "diagnostics=off", f"dataset.root={data_root}"]
    command += ["act2=relu,tanh", "act3=relu,tanh", "act1=relu,sigmoid", f"seed=range({seeds})"]
    command += [f"hydra.sweep.dir={tmp_path / f'sweep{seeds}'}"]
    done = subprocess.run([sys.executable, "-c", PEAK, *command], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.split()[-1])


def test_the_drivers_memory_stays_flat_as_a_sweep_grows_from_2_to_16_populations(tmp_path, data_root):
    small, large = peak_kb(tmp_path, data_root, 2), peak_kb(tmp_path, data_root, 16)  # 16 and 128 jobs
    assert large < 1.1 * small, (small, large)
