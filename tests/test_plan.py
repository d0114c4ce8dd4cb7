"""A sweep's plan alone, without training: jobs composed once per group, finished jobs, populations, backend."""

import json
import pickle
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext

from sherlocked.records.job import Job
from sherlocked.records.results import Result
from sherlocked.spec.config import ConfigError
from sherlocked.spec.shapes import linear_shapes
from sherlocked.sweep import devices, plan
from tests.conftest import CONF

GRID = [  # 2 groups (batch sizes) x 2 activations x 3 seeds: in Hydra's order
    [f"dataset.batch_size={b}", f"act2={a}", f"seed={s}", "dataset=mnist_5k", "trainer=cpu"]
    for b in (16, 32)
    for a in ("relu", "sigmoid")
    for s in range(3)
]


@pytest.fixture
def planned(tmp_path, monkeypatch):
    """planned(max_members, backend, workers): the plan of GRID in tmp_path/sweep, and how often Hydra composed."""
    composed = []

    def make(max_members=None, backend="local", workers=0):
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            loader = GlobalHydra.instance().config_loader()
            load = loader.load_sweep_config
            monkeypatch.setattr(loader, "load_sweep_config", lambda *a: composed.append(a[1]) or load(*a))
            master = compose("train", [f"hydra.sweep.dir={tmp_path / 'sweep'}"], return_hydra_config=True)
            jobs, hydra = plan.jobs_of(HydraContext(config_loader=loader, callbacks=None), master, GRID, 10)
        plan.read_finished(jobs)
        return plan.make(jobs, backend, max_members, workers, hydra)

    make.composed = composed
    return make


@pytest.mark.slow
def test_a_plan_composes_each_group_once_and_splits_its_jobs_into_populations(planned, tmp_path):
    the_plan = planned(max_members=4)
    assert len(planned.composed) == 2  # one composition per group: the rest derived
    assert [job.index for job in the_plan.jobs] == list(range(10, 22))
    assert [job.overrides for job in the_plan.jobs] == GRID
    assert {job.sweep_dir for job in the_plan.jobs} == {tmp_path / "sweep"}
    assert (the_plan.device, the_plan.workers, the_plan.max_members) == ("cpu", 0, 4)
    sizes = [[job.config["dataset"]["batch_size"] for job in population] for population in the_plan.populations]
    assert sizes == [[16] * 3, [16] * 3, [32] * 3, [32] * 3]  # balanced, and no population mixes the groups
    described = "12 jobs, 0 finished before; 12 to train in 4 populations (4 x 3 members) on this process, cpu"
    assert the_plan.describe().endswith(described)
    assert not (tmp_path / "sweep").exists()  # planned: nothing written, nothing trained
    worker = pickle.loads(pickle.dumps(the_plan.jobs[0]))  # what a worker process, Ray or SLURM gets
    assert worker == the_plan.jobs[0] and not hasattr(worker, "hydra")  # the job record holds no Hydra object
    assert sorted(the_plan.hydra) == list(range(10, 22))  # the plan keeps each job's Hydra side, by its index


@pytest.mark.slow
def test_finished_jobs_are_left_out_of_the_populations(planned):
    first = planned(max_members=0)
    assert [len(population) for population in first.populations] == [6, 6]
    for job in first.jobs[:6]:  # the first group finished by an earlier run, with the same config
        job.job_dir.mkdir(parents=True)
        Result(status="ok", config=job.config, final_test_acc=0.9).write(job.job_dir)
    stale = first.jobs[6]  # one of the second group's, with another config: not finished
    stale.job_dir.mkdir(parents=True)
    Result(status="ok", config={**stale.config, "seed": 99}).write(stale.job_dir)
    again = planned(max_members=0)
    assert [job.finished is not None for job in again.jobs] == [True] * 6 + [False] * 6
    assert again.jobs[0].finished.skipped and again.jobs[0].finished.final_test_acc == 0.9
    assert [[job.index for job in population] for population in again.populations] == [list(range(16, 22))]
    assert "12 jobs, 6 finished before; 6 to train in 1 population (1 x 6 members)" in again.describe()
    assert json.loads((stale.job_dir / "result.json").read_text())["config"]["seed"] == 99  # read, not touched


@pytest.mark.slow
def test_a_plan_names_its_backend_and_spreads_over_the_workers(planned):
    assert planned(backend="ray").where == "ray" and planned(backend="ray").workers == 0
    spread = planned(max_members=0, workers=4)
    assert spread.where == "4 worker processes" and [len(p) for p in spread.populations] == [3, 3, 3, 3]
    with pytest.raises(ConfigError, match="hydra.launcher.backend='slurm'; choose from local, ray, submitit"):
        planned(backend="slurm")


STUDY = ["act1=relu,tanh,sigmoid,selu", "act2=relu,tanh,sigmoid,selu", "act3=relu,tanh,sigmoid,selu", "seed=range(9)"]


def plan_command(tmp_path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sherlocked.train", "--plan", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.slow
def test_plan_prints_the_studys_populations_memory_time_and_disk_and_writes_nothing(tmp_path):
    bench = tmp_path / "outputs" / "bench"  # what python -m sherlocked.bench measured on this device kind
    bench.mkdir(parents=True)
    figures = {
        "device": "cpu (2 threads)",
        "population_gflops": 50.0,
        "sweep_overhead": {"framework_overhead_s_per_job": 0.02},
    }
    (bench / "bench_cpu.json").write_text(json.dumps(figures))
    done = plan_command(tmp_path, *STUDY, "dataset=mnist_5k", "trainer=cpu", "diagnostics=off")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()[-4:]
    assert (
        lines[0]
        == "plan: 576 jobs, 0 finished before; 576 to train in 36 populations (36 x 16 members) on this process, cpu"
    )
    params, values = 784 * 500 + 500 + 500 * 256 + 256 + 256 * 10 + 10, 500 + 256 + 10  # weights, and each layer's
    per_member = 4 * (4 * params + 4 * values * (32 + 1000))  # x4 copies of both, a batch of 32 and 1,000 tests
    assert lines[1].startswith(f"  memory: about {(16 * per_member + 4 * 5000 * 784) / 2**30:.2f} GiB a device")
    seconds = 576 * (
        devices.flops_per_member_epoch(linear_shapes([784, 500, 256, 10]), 32, 125, 1000) * 10 / 50e9 + 0.02
    )
    assert lines[2].startswith(
        f"  time: about {timedelta(seconds=round(seconds))} on this machine, the command's start"
    )
    assert "(cpu (2 threads): 50.0 GFLOP/s for MLP populations, 20 ms a job besides" in lines[2]
    assert re.match(r"  disk: about [\d.]+ MiB \([\d.]+ KiB a job in 7 files and 3 folders: \.hydra/ ", lines[3]), (
        lines[3]
    )
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_plan_sizes_a_study_of_100000_jobs(tmp_path):
    acts = "relu,tanh,sigmoid,selu,gelu,silu,elu,leaky_relu,softplus,mish,identity"
    grid = [f"act1={acts}", f"act2={acts}", f"act3={acts}", "seed=range(25)", "model.batch_norm=none,all,last"]
    done = plan_command(tmp_path, *grid, "dataset=mnist_5k", "trainer=cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    plan, memory, time, disk = done.stdout.strip().splitlines()[-4:]
    assert plan.startswith("plan: 99825 jobs, 0 finished before; 99825 to train in 6240 populations")
    assert time.startswith("  time: no estimate: the benchmark has not run on this cpu")
    assert not (tmp_path / "sweep").exists()


def test_the_same_command_forms_the_same_populations_whatever_finished(monkeypatch):
    """make sweep on a 4-GPU machine: 576 jobs, 4 x 144; one population finished and a tenth of another, the
    rest resume as the populations they were (and find their checkpoints), not regrouped into 4 x 108."""
    monkeypatch.setattr(devices, "memory_cap", lambda config, device: 10**6)
    jobs = [
        Job({"seed": i, "trainer": {"accelerator": "cpu"}}, Path(f"seed={i}"), [f"seed={i}"], index=i)
        for i in range(576)
    ]
    first = plan.make(jobs, "local", max_members=0, workers=4)
    assert [len(p) for p in first.populations] == [144] * 4
    for job in first.populations[0] + first.populations[1][:14]:
        job.finished = Result(status="ok", config={})
    again = plan.make(jobs, "local", max_members=0, workers=4)
    assert [[job.index for job in p] for p in again.populations] == [
        [job.index for job in first.populations[1][14:]],
        *([job.index for job in p] for p in first.populations[2:]),
    ]


def test_the_data_is_fetched_once_for_the_jobs_to_train_and_never_for_a_plan_with_none(planned, monkeypatch, capsys):
    """Where the plan says the data is needed (sherlocked.sweep.run.fetch_data): once a dataset, by the driver, before
    any worker starts; not by the sweep's checks, not for a sweep with nothing to train."""
    from sherlocked.spec.datasets import DataError
    from sherlocked.sweep import run
    from sherlocked.training import data

    the_plan = planned(max_members=4)
    fetched = []
    monkeypatch.setattr(run, "on_disk", lambda dataset: False)  # as if each had to download
    monkeypatch.setattr(data, "load", lambda *key: fetched.append(key))
    run.fetch_data([])
    assert fetched == []
    run.fetch_data(the_plan.todo)
    assert [key[0] for key in fetched] == ["mnist_5k"]  # 12 jobs, one dataset: one fetch

    def refused(*key):
        raise DataError("mnist is not in nowhere and could not be downloaded (URLError); put its files in ...")

    monkeypatch.setattr(data, "load", refused)
    with pytest.raises(SystemExit) as stopped:
        run.fetch_data(the_plan.todo)
    assert stopped.value.code == 2
    assert (
        capsys.readouterr().err
        == "sherlocked: mnist is not in nowhere and could not be downloaded (URLError); put its files in ...\n"
    )
