"""Populations on Ray (a local Ray with fake GPUs) and submitit (its local executor), as on a cluster."""

import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sherlocked.sweep.backends import handles, share_of_cores, signal_each, wait_for_ends
from tests.conftest import CNN, checkout_on_path

ROOT = Path(__file__).parents[1]
GRID = ["act3=relu,tanh", "seed=0,1", "hydra/launcher=population", "hydra.launcher.max_members=2"]


def results(directory: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(directory)): json.loads(p.read_text()) for p in directory.rglob("result.json")}


def same_results(a: dict, b: dict) -> bool:
    keys = ("status", "final_test_acc", "history", "config")
    return set(a) == set(b) and all(a[job][key] == b[job][key] for job in a for key in keys)


def local_ray(*extra: str) -> list[str]:
    """A local Ray for the sweep: 2 CPUs, 2 fake GPUs (Ray sets CUDA_VISIBLE_DEVICES per task from them)."""
    return [
        "hydra.launcher.backend=ray",
        "hydra.launcher.gpus_per_population=1",
        "+hydra.launcher.ray.init.num_cpus=2",
        "+hydra.launcher.ray.init.num_gpus=2",
        "+hydra.launcher.ray.init.object_store_memory=80000000",
        "+hydra.launcher.ray.init.include_dashboard=false",
        f"+hydra.launcher.ray.init.runtime_env={{env_vars:{{PYTHONPATH:'{ROOT}'}}}}",  # tests' helpers importable
        *extra,
    ]


@pytest.mark.slow
def test_ray_tasks_see_their_own_gpus_and_give_the_local_backends_results(sweep, tmp_path, capsys):
    pytest.importorskip("ray")
    with sweep(tmp_path / "local", *GRID), sweep(tmp_path / "ray", *GRID, *local_ray()):
        assert same_results(results(tmp_path / "local"), results(tmp_path / "ray"))
        out = capsys.readouterr().out
        assert "4/4 jobs: 4 ok" in out
        finished = [line for line in out.splitlines() if "finished on" in line]
        placed = {line.rsplit("CUDA_VISIBLE_DEVICES=", 1)[1].split(",")[0] for line in finished}
        assert {"0", "1"} <= placed  # two populations, one fake GPU each
        on_ray = [line for line in finished if "CUDA_VISIBLE_DEVICES=," not in line]  # not the local sweep's
        assert on_ray and all(line.endswith(", 1 threads") for line in on_ray), finished  # cpus_per_population


@pytest.mark.slow
def test_a_ray_task_whose_worker_dies_is_retried_and_the_sweep_completes(sweep, tmp_path, capsys):
    pytest.importorskip("ray")
    kill_once = "logger.tensorboard._target_=tests.ray_helpers.KillOnce"
    dies = [kill_once, f"+logger.tensorboard.marker={tmp_path / 'killed'}"]
    with sweep(tmp_path / "sweep", *GRID, *local_ray(), *dies):
        assert (tmp_path / "killed").exists()  # one worker died
        assert sorted(r["status"] for r in results(tmp_path / "sweep").values()) == ["ok"] * 4
        assert "4/4 jobs: 4 ok, 0 diverged, 0 failed" in capsys.readouterr().out


def test_a_missing_backend_package_stops_before_anything_is_written(sweep, tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_ray)
    with pytest.raises(SystemExit) as stopped, sweep(tmp_path / "sweep", *GRID, "hydra.launcher.backend=ray"):
        pass
    assert stopped.value.code == 2
    assert "hydra.launcher.backend=ray needs ray: pip install -e '.[ray]'" in capsys.readouterr().err
    assert not list((tmp_path / "sweep").rglob("result.json"))


def local_submitit(tmp_path: Path) -> list[str]:
    return ["hydra.launcher.backend=submitit", "hydra.launcher.submitit.cluster=local", "hydra.launcher.max_retries=1"]


@pytest.mark.slow
def test_submitit_on_this_machine_gives_the_local_backends_results(sweep, tmp_path, capsys):
    pytest.importorskip("submitit")
    with sweep(tmp_path / "local", *GRID), sweep(tmp_path / "submitit", *GRID, *local_submitit(tmp_path)):
        assert same_results(results(tmp_path / "local"), results(tmp_path / "submitit"))
        out = capsys.readouterr().out
        assert "4/4 jobs: 4 ok" in out
        finished = [line for line in out.splitlines() if "finished on" in line][-2:]  # the submitit sweep's
        shares = {line.rsplit(", ", 1)[1] for line in finished}
        assert shares == {f"{share_of_cores(2)} threads"}, out  # 2 elements at a time share the cores
        assert list((tmp_path / "submitit" / ".submitit").glob("*/*_log.out"))  # submitit ran the elements


def test_the_slurm_array_script_is_submitits_with_our_array_and_gpu_settings(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    from sherlocked.records.job import Job
    from sherlocked.sweep import backends

    bin_dir = tmp_path / "bin"  # a stand-in sbatch: keeps the script it is given, answers like SLURM
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/script.sh\necho "Submitted batch job 4242"\n')
    (bin_dir / "sbatch").chmod(0o755)
    (bin_dir / "srun").write_text("#!/bin/sh\n")  # submitit looks for it to know it is on a SLURM cluster
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    settings = {
        "cpus_per_population": 4,
        "max_retries": 2,
        "submitit": {
            "cluster": "slurm",
            "folder": str(tmp_path / "logs" / "%j"),
            "partition": "gpu",
            "gpus_per_node": None,
            "cpus_per_task": None,
            "mem_gb": 32,
            "timeout_min": 90,
            "array_parallelism": 8,
            "additional_parameters": {"account": "study"},
            "setup": ["module load cuda"],
        },
    }
    jobs = [Job.of(make_cfg(f"seed={s}"), tmp_path / f"job{s}") for s in range(3)]
    run = backends.executor(settings, gpus=0.5, folder=settings["submitit"]["folder"])
    run.map_array(backends.TrainPopulation(), [[job] for job in jobs])
    script = (tmp_path / "script.sh").read_text()
    for line in (
        "#SBATCH --array=0-2%3",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --partition=gpu",
        "#SBATCH --mem=32GB",
        "#SBATCH --time=90",
        "#SBATCH --account=study",
        "module load cuda",
    ):
        assert line in script, line


def test_a_requeued_element_trains_only_the_members_an_earlier_attempt_left(make_cfg, tmp_path):
    pytest.importorskip("submitit")
    from submitit.helpers import DelayedSubmission

    from sherlocked.records.job import Job
    from sherlocked.sweep import backends
    from sherlocked.training.engine import train

    jobs = [Job.of(make_cfg(f"seed={s}", "trainer.max_epochs=1"), tmp_path / f"job{s}") for s in range(2)]
    for job in jobs:
        job.job_dir.mkdir()
    work = backends.TrainPopulation()
    again = work.checkpoint(jobs)  # what submitit resubmits when SLURM preempts or times the element out
    assert isinstance(again, DelayedSubmission) and again.function is work and again.args == (jobs, None, None)
    (first,) = train([jobs[0]])  # the first attempt finished one member before it was stopped
    results, where = again.function(*again.args)
    assert results[0].skipped and results[0].final_test_acc == first.final_test_acc
    assert not results[1].skipped and results[1].status == "ok" and "CUDA_VISIBLE_DEVICES" in where


# As submitit's time-limit handler: requeue (SLURM then sends SIGTERM to every process of the element: `kill 0`
# here), then exit. submitit's SIGTERM handler only logs it.
REQUEUED_ELEMENT = """
import os, signal, subprocess, sys
from sherlocked.sweep.backends import requeue_outlives_its_kill
def submitits(signum, frame):
    subprocess.check_call(["sh", "-c", "kill -TERM 0; sleep 0.5"])
    sys.exit(0)
signal.signal(signal.SIGTERM, lambda signum, frame: None)
signal.signal(signal.SIGUSR2, submitits)
if sys.argv[1] == "outlives":
    requeue_outlives_its_kill()
os.kill(os.getpid(), signal.SIGUSR2)
"""


@pytest.mark.parametrize("handler", ["outlives", "submitits"])
def test_a_time_limit_requeue_outlives_the_sigterm_slurm_sends_with_it(handler):
    """On a busy node `scontrol requeue` died of the SIGTERM its own requeue makes SLURM send, and the element
    failed for good (CI: an element signalled while importing torch). The plain handler shows the race is real."""
    element = subprocess.run(
        [sys.executable, "-c", REQUEUED_ELEMENT, handler], capture_output=True, text=True, start_new_session=True
    )
    if handler == "outlives":
        assert element.returncode == 0, element.stderr
    else:
        assert element.returncode == 1 and "died with <Signals.SIGTERM: 15>" in element.stderr, element.stderr


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfds", "without"])
def test_a_stopped_drivers_workers_are_signalled_and_waited_for_with_or_without_pidfds(monkeypatch, pidfds):
    """Linux gives pidfds; macOS (and Linux before 5.3) has none, and the driver falls back to multiprocessing's
    own sentinels."""
    if not pidfds:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    worker = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(60,))
    worker.start()
    try:
        (handle,) = handles([worker])
        assert handle.is_pidfd == pidfds
        wait_for_ends([handle], 0.2)
        assert worker.is_alive()  # the wait ended by its bound, the worker lives
        signal_each([handle], signal.SIGKILL)
        wait_for_ends([handle], 30)
        worker.join(10)  # a sentinel reads ready as the process closes its files, a moment before it can be reaped
        assert worker.exitcode == -signal.SIGKILL
        os.close(handle.ended)
    finally:
        worker.kill()


# A driver and one local worker, its fork server's child, which saves 3 s after SIGTERM; then SIGTERM to the whole
# process group, as a cloud's shutdown sends it: the driver stays, the fork server dies, the worker saves.
STOPPED_SWEEP = """
import multiprocessing, os, signal, sys, time
from pathlib import Path
from sherlocked.sweep.backends import handles, wait_for_ends

def saves_at_sigterm(saved):
    def save(signum, frame):
        time.sleep(3)  # the step under way, then the save
        saved.touch()
        os._exit(0)
    signal.signal(signal.SIGTERM, save)
    saved.with_suffix(".ready").touch()
    time.sleep(60)

if __name__ == "__main__":
    saved, waiting = Path(sys.argv[1]), sys.argv[2]
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # the driver's own stop is not this test's
    worker = multiprocessing.get_context("forkserver").Process(target=saves_at_sigterm, args=(saved,))
    worker.start()
    while not saved.with_suffix(".ready").exists():
        time.sleep(0.05)
    processes = handles([worker])
    os.killpg(0, signal.SIGTERM)
    if waiting == "handles":
        wait_for_ends(processes, 30)
    else:
        worker.join(30)
    print(worker.exitcode, saved.exists())
"""


@pytest.mark.slow
@pytest.mark.parametrize("waiting", ["handles", "multiprocessing"])
def test_a_stopped_driver_waits_for_its_workers_to_save_though_their_fork_server_died_first(tmp_path, waiting):
    """CI: SIGTERM to a sweep's process group ended the workers' fork server too, multiprocessing then reported
    every worker ended at once, and the driver left (its workers with it) before one had saved. The driver waits on
    the workers themselves; multiprocessing's own wait shows the race is real."""
    script = tmp_path / "sweep.py"  # a file: the fork server imports the worker's function from it
    script.write_text(STOPPED_SWEEP)
    env = {**os.environ, "PYTHONPATH": checkout_on_path()}
    driver = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "saved"), waiting],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
        env=env,
    )
    assert driver.returncode == 0, driver.stderr
    exitcode, saved = driver.stdout.split()
    if waiting == "handles":
        assert saved == "True", driver.stdout
    else:  # the fork server's pipe closed: "ended", 255, while the worker is still saving
        assert (exitcode, saved) == ("255", "False"), driver.stdout


def test_a_worker_that_cannot_see_the_sweep_dir_fails_its_population_with_one_line(make_cfg, tmp_path):
    from sherlocked.records.job import Job
    from sherlocked.sweep import backends

    jobs = [Job.of(make_cfg(f"seed={s}"), tmp_path / "elsewhere" / f"job{s}") for s in range(2)]  # never written
    results, where = backends.train_population(jobs)
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("cannot see" in r.error and "filesystem every worker shares" in r.error for r in results)
    assert "\n" not in results[0].error


def test_an_unreachable_ray_address_stops_with_one_line_before_anything_is_written(sweep, tmp_path, capsys):
    """ray.init retried such an address for minutes, a warning every few seconds."""
    pytest.importorskip("ray")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    unreachable = ["hydra.launcher.backend=ray", f"hydra.launcher.ray.address=127.0.0.1:{port}"]
    with pytest.raises(SystemExit) as stopped, sweep(tmp_path / "sweep", *GRID, *unreachable):
        pass
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"sherlocked: hydra.launcher.ray.address=127.0.0.1:{port}: no Ray cluster answers there (Connection refused); "
        "start one (ray start --head) or give its head's address"
    )
    assert list((tmp_path / "sweep").iterdir()) == []  # the test runner made the dir; nothing in it


# The population launcher's every backend, given a CNN: local worker processes, a local Ray, submitit's local executor.
CNN_BACKENDS = {
    "workers": lambda tmp_path: ["hydra.launcher.workers=2"],
    "ray": lambda tmp_path: local_ray(),
    "submitit": lambda tmp_path: local_submitit(tmp_path),
}


def close_results(a: dict, b: dict) -> bool:
    """same_results, the numbers to fp32's rounding: a grouped convolution of K members sums in another order than
    one member's convolution (a conv layer of more than one input channel differs in its last bits)."""

    def numbers(result: dict) -> list[float]:
        history = result["history"]
        return [result["final_test_acc"], *(v for name in sorted(history) for v in history[name])]

    same = set(a) == set(b) and all(a[job][key] == b[job][key] for job in a for key in ("status", "config"))
    return same and all(
        a[job]["history"].keys() == b[job]["history"].keys()
        and numbers(a[job]) == pytest.approx(numbers(b[job]), rel=1e-5, abs=1e-6)
        for job in a
    )


@pytest.mark.slow
@pytest.mark.parametrize("backend", CNN_BACKENDS)
def test_a_cnn_population_on_every_backend_gives_the_basic_launchers_results(sweep, tmp_path, capsys, backend):
    """Each job of a CNN sweep alone (Hydra's basic launcher: a population of one) and in populations of 2 on the
    backend: the same results."""
    if backend != "workers":
        pytest.importorskip(backend)
    grid = [*CNN, "act3=relu,tanh", "seed=0,1"]
    population = [*GRID[2:], *CNN_BACKENDS[backend](tmp_path)]
    with sweep(tmp_path / "basic", *grid), sweep(tmp_path / backend, *grid, *population):
        basic, there = results(tmp_path / "basic"), results(tmp_path / backend)
        assert len(basic) == 4 and all(r["config"]["model"]["channels"] == [2, 3] for r in basic.values())
        assert close_results(basic, there)
        out = capsys.readouterr().out
        assert "4 to train in 2 populations (2 x 2 members)" in out
        assert f"sweep finished in {tmp_path / backend}: 4/4 jobs: 4 ok" in out
