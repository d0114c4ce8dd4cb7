"""hydra/launcher=population: found by Hydra, same job dirs and results as the basic launcher."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.experimental.callback import Callback
from hydra.plugins.launcher import Launcher

from sherlocked.hydra_side import adapter
from sherlocked.records import results as results_module
from sherlocked.records.job import Job
from sherlocked.sweep import devices
from sherlocked.sweep.plan import group_key, split
from tests.conftest import CONF

GRID = ["act2=relu,sigmoid", "act3=relu,tanh", "seed=0,1"]


def test_the_launcher_plugin_is_discovered_and_its_config_registered():
    assert "PopulationLauncher" in [p.__name__ for p in Plugins.instance().discover(Launcher)]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=population"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("PopulationLauncher") and cfg.hydra.launcher.max_members is None


def test_jobs_are_grouped_on_their_overrides_without_member_keys():
    a = group_key(["act1=relu", "seed=1", "model.batch_norm=all", "dataset=mnist_5k", "model.init=xavier"])
    b = group_key(["dataset=mnist_5k", "act1=tanh", "+act4=relu", "seed=7", "model.output_activation=false"])
    assert a == b == ("dataset=mnist_5k",)
    assert group_key(["dataset=mnist_5k", "model.optimizer.lr=0.1"]) == a  # each member its own learning rate
    assert group_key(["dataset=mnist_5k", "dataset.batch_size=8"]) != a
    assert group_key(["dataset=mnist_5k", "model/optimizer=adam", "act1=relu"]) == (
        "dataset=mnist_5k",
        "model/optimizer=adam",
    )


def results(directory: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(directory)): json.loads(p.read_text()) for p in directory.rglob("result.json")}


@pytest.mark.slow
def test_population_and_basic_launchers_give_the_same_job_dirs_and_results(sweep, tmp_path, capsys):
    population = ["hydra/launcher=population", "hydra.launcher.max_members=3"]  # 8 jobs: groups of 3, 3, 2
    with sweep(tmp_path / "basic", *GRID), sweep(tmp_path / "population", *GRID, *population) as pop:
        basic, grouped = results(tmp_path / "basic"), results(tmp_path / "population")
        assert set(basic) == set(grouped) and len(basic) == 8
        for job in basic:
            assert (tmp_path / "population" / job / ".hydra" / "config.yaml").exists()
            assert grouped[job]["population_size"] in (2, 3) and basic[job]["population_size"] == 1
            assert grouped[job]["config"] == basic[job]["config"]
            for key in ("test_acc", "test_loss", "train_loss"):
                assert grouped[job]["history"][key] == pytest.approx(basic[job]["history"][key], abs=1e-5)
        assert sorted(r.return_value.status for r in pop.returns[0]) == ["ok"] * 8
        assert "8/8 jobs: 8 ok, 0 diverged, 0 failed, 0 skipped" in capsys.readouterr().out

        with sweep(tmp_path / "population", *GRID, *population) as again:
            assert all(r.return_value.skipped for r in again.returns[0])


@pytest.mark.slow
def test_derived_job_dirs_hold_what_hydras_run_job_writes_byte_for_byte(sweep, tmp_path, monkeypatch):
    grid = ["act2=relu,'relu|tanh'", "model.batch_norm=none,[1,3]", "seed=0,1", "hydra/launcher=population"]
    grid.append("+trainer.limit_train_batches=1")

    def every_job_through_run_job():
        monkeypatch.setattr(adapter.Template, "derivable", lambda self, jobs: False)
        return sweep(tmp_path / "composed", *grid)

    with sweep(tmp_path / "derived", *grid), every_job_through_run_job():
        files = sorted(p.relative_to(tmp_path / "composed") for p in (tmp_path / "composed").rglob(".hydra/*.yaml"))
        assert len(files) == 8 * 3
        assert files == sorted(p.relative_to(tmp_path / "derived") for p in (tmp_path / "derived").rglob(".hydra/*"))
        for name in files:
            derived = (tmp_path / "derived" / name).read_text().replace(str(tmp_path / "derived"), "SWEEP")
            assert derived == (tmp_path / "composed" / name).read_text().replace(str(tmp_path / "composed"), "SWEEP")
        composed, derived = results(tmp_path / "composed"), results(tmp_path / "derived")
        assert len(composed) == 8 and all(derived[job]["config"] == composed[job]["config"] for job in composed)


@pytest.mark.slow
def test_finished_jobs_are_read_from_the_table_and_counted_before_any_training(sweep, tmp_path, capsys, monkeypatch):
    population = ["hydra/launcher=population", "seed=0,1"]
    with sweep(tmp_path, "act3=relu", *population):
        capsys.readouterr()
        reads = []
        read_result = results_module.read_result
        monkeypatch.setattr(results_module, "read_result", lambda d: reads.append(d) or read_result(d))
        with sweep(tmp_path, "act3=relu,tanh", *population) as again:
            # the two finished jobs come from the sweep's table; the two new ones, which it lacks, are looked up once
            # in their own (missing) result.json; training them reads nothing back
            assert sorted(path.name.split(",")[0] for path in reads) == ["act3=tanh", "act3=tanh"]
            assert sorted((r.return_value.skipped, r.return_value.status) for r in again.returns[0]) == [
                (False, "ok"),
                (False, "ok"),
                (True, "ok"),
                (True, "ok"),
            ]
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sweep ")]
    assert lines[0].startswith("sweep of 4 jobs into") and lines[0].endswith("checking its values")
    assert lines[1].startswith("sweep 1/4 jobs: 0 ok, 0 diverged, 0 failed, 1 skipped")  # before any training
    assert lines[-2].startswith("sweep 4/4 jobs: 2 ok, 0 diverged, 0 failed, 2 skipped")  # (at most a line a second)


def sweep_with_a_failing_population(sweep, tmp_path) -> int:
    """4 jobs in 2 populations, one of which cannot build its optimiser; the sweep's exit code."""
    optimizers = "model.optimizer._target_=torch.optim.SGD,nope.Nope"
    with (
        pytest.raises(SystemExit) as stopped,
        sweep(tmp_path, "act3=relu,tanh", optimizers, "hydra/launcher=population"),
    ):
        pass
    return stopped.value.code


@pytest.mark.slow
def test_a_failing_population_is_recorded_and_the_others_train(sweep, tmp_path, capsys):
    assert sweep_with_a_failing_population(sweep, tmp_path) == 1
    found = results(tmp_path)
    assert sorted(r["status"] for r in found.values()) == ["failed", "failed", "ok", "ok"]
    assert "4/4 jobs: 2 ok, 0 diverged, 2 failed" in capsys.readouterr().out


@pytest.mark.slow
def test_a_sweeps_end_that_fails_still_counts_and_exits_1_for_its_failed_jobs(sweep, tmp_path, capsys, monkeypatch):
    def broken(sweep_dir):
        raise RuntimeError("the mean runs failed\nwith a second line")

    monkeypatch.setattr("sherlocked.records.dashboard.write_means", broken)
    assert sweep_with_a_failing_population(sweep, tmp_path) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-2] == "the results table and TensorBoard's runs were not finished: RuntimeError: the mean runs failed"
    assert "4/4 jobs: 2 ok, 0 diverged, 2 failed" in out[-1]


@pytest.mark.slow
def test_worker_processes_give_the_same_results_as_in_process(sweep, tmp_path):
    grid = ["act3=relu,tanh", "seed=0,1"]
    workers = ["hydra/launcher=population", "hydra.launcher.max_members=2", "hydra.launcher.workers=2"]
    with sweep(tmp_path / "inline", *grid, "hydra/launcher=population"), sweep(tmp_path / "workers", *grid, *workers):
        inline, spread = results(tmp_path / "inline"), results(tmp_path / "workers")
        assert set(inline) == set(spread) and len(inline) == 4
        for job in inline:
            assert spread[job]["history"]["test_acc"] == pytest.approx(inline[job]["history"]["test_acc"], abs=1e-5)


def test_populations_are_capped_by_the_memory_one_member_needs(monkeypatch):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose("train")
    params = 784 * 500 + 500 + 500 * 256 + 256 + 256 * 10 + 10
    per_member = devices.member_bytes(cfg)
    assert per_member == 4 * (4 * params + 4 * (500 + 256 + 10) * (32 + 1000))
    pages = {"SC_PAGE_SIZE": 4096, "SC_AVPHYS_PAGES": 2 * 10 * per_member // 4096 + 1}
    monkeypatch.setattr(devices.os, "sysconf", pages.__getitem__)
    assert devices.memory_cap(cfg, "cpu") == 10


def fake_jobs(n: int, *shared: str) -> list:
    """Jobs as split() sees them: overrides (member keys differ) and a config."""
    return [Job({}, Path(f"seed={i}"), [f"seed={i}", *shared]) for i in range(n)]


@pytest.mark.parametrize(
    ("sizes", "gpus", "max_members", "expected"),
    [
        ((576,), 4, 0, [144] * 4),  # make sweep on a 4-GPU workstation: every GPU a quarter
        ((10,), 3, 0, [3, 3, 4]),
        ((100, 20), 4, 0, [25, 25, 25, 25, 20]),  # shares in proportion to the groups' sizes
        ((576,), 4, 16, [16] * 36),  # max_members still caps
        ((8,), 0, 3, [2, 3, 3]),  # no workers: split at max_members, balanced
        ((2,), 8, 0, [1, 1]),  # fewer jobs than GPUs: one each
    ],
)
def test_populations_are_spread_over_every_gpu_in_balanced_sizes(monkeypatch, sizes, gpus, max_members, expected):
    monkeypatch.setattr(devices, "memory_cap", lambda config, device: 10**6)
    monkeypatch.setattr("torch.cuda.device_count", lambda: gpus)
    workers = devices.worker_count(0)
    assert workers == (gpus if gpus > 1 else 0)  # one worker per GPU, in-process with one or none
    jobs = [job for i, n in enumerate(sizes) for job in fake_jobs(n, f"dataset=d{i}")]
    populations = split(jobs, max_members, "cuda", workers)
    assert [len(p) for p in populations] == expected
    assert sorted(id(job) for p in populations for job in p) == sorted(id(job) for job in jobs)


def test_tensorboard_runs_are_named_by_what_the_sweep_varies_and_never_share_a_folder(tmp_path):
    from sherlocked.records.layout import name_runs

    def batch(dataset: str) -> list:
        overrides = [[f"act1={act}", f"dataset={dataset}", "seed=0"] for act in ("relu", "tanh")]
        return [Job({}, tmp_path / ",".join(o), o) for o in overrides]

    tensorboard = lambda job: True  # noqa: E731 (each job writes a TensorBoard run)
    first = batch("mnist")
    name_runs(first, tmp_path, first, tensorboard)
    assert [job.events_dir for job in first] == [tmp_path / "tensorboard" / f"act1={a}" for a in ("relu", "tanh")]
    assert [job.run_name for job in first] == ["act1=relu", "act1=tanh"]  # every tracker's name for its run
    again = batch("mnist")  # the same sweep once more (a resume): the same runs
    name_runs(again, tmp_path, again[1:], tensorboard)
    assert again[1].events_dir == first[1].events_dir and again[0].events_dir is None
    other = batch("fashion_mnist")  # another sweep into the same dir, whose short names are taken
    name_runs(other, tmp_path, other, tensorboard)
    assert [job.events_dir.name for job in other] == [job.job_dir.name for job in other]
    untracked = batch("cifar10")  # no TensorBoard run (logger=mlflow): named all the same, no folder
    name_runs(untracked, tmp_path, untracked, lambda job: False)
    assert [job.run_name for job in untracked] == ["act1=relu", "act1=tanh"]
    assert [job.events_dir for job in untracked] == [None, None]


@pytest.mark.slow
def test_jobs_that_differ_in_learning_rate_momentum_or_weight_decay_train_as_one_population(sweep, tmp_path):
    grid = ["model.optimizer.lr=0.1,0.01", "model.optimizer.momentum=0.5,0.9", "model.optimizer.weight_decay=0,0.001"]
    with sweep(tmp_path / "sweep", *grid, "hydra/launcher=population") as done:
        results = [job.return_value for job in done.returns[0]]
        assert len(results) == 8 and all(r.status == "ok" and r.population_size == 8 for r in results)
        settings = {(r.hparams["lr"], r.hparams["momentum"], r.hparams["weight_decay"]) for r in results}
        assert settings == set(itertools.product((0.1, 0.01), (0.5, 0.9), (0.0, 0.001)))


@pytest.mark.slow
def test_hydra_interpolations_resolve_per_job(sweep, tmp_path):
    """${hydra:...} in the task config: each job its own value, as Hydra's basic launcher gives it."""
    tags = ["+tag=n${hydra:job.num}", "+out=${hydra:runtime.output_dir}", "+name=${hydra:job.override_dirname}"]
    with sweep(tmp_path / "sweep", "act3=relu,tanh", "hydra/launcher=population", *tags) as done:
        returns = done.returns[0]
        assert [r.return_value.status for r in returns] == ["ok", "ok"]
        for number, r in enumerate(returns):
            config = r.return_value.config
            job_dir = Path(config["out"])
            assert (config["tag"], job_dir.parent, job_dir.name) == (f"n{number}", tmp_path / "sweep", config["name"])
            assert json.loads((job_dir / "result.json").read_text())["config"]["tag"] == f"n{number}"


class Probe(Callback):
    """A user's Hydra callback that reads HydraConfig, as callbacks under Hydra's basic launcher can."""

    def __init__(self, record: str):
        self.record = Path(record)

    def on_job_start(self, config, **kwargs) -> None:
        self.write(["start", HydraConfig.get().job.num, config.hydra.job.num])

    def on_job_end(self, config, job_return, **kwargs) -> None:
        self.write(["end", HydraConfig.get().job.num, job_return.return_value.status])

    def write(self, seen: list) -> None:
        with open(self.record, "a") as f:
            f.write(json.dumps(seen) + "\n")


@pytest.mark.slow
def test_a_users_callback_reads_each_jobs_hydra_config(sweep, tmp_path):
    probe = [
        "+hydra.callbacks.probe._target_=tests.test_launcher.Probe",
        f"+hydra.callbacks.probe.record={tmp_path}/seen",
    ]
    with sweep(tmp_path / "sweep", "act3=relu,tanh", "hydra/launcher=population", *probe):
        seen = sorted(json.loads(line) for line in (tmp_path / "seen").read_text().splitlines())
        assert seen == [["end", 0, "ok"], ["end", 1, "ok"], ["start", 0, 0], ["start", 1, 1]]


@pytest.mark.slow
def test_a_job_that_changes_into_its_dir_says_so(sweep, tmp_path):
    with sweep(tmp_path / "sweep", "act3=relu,tanh", "hydra/launcher=population", "hydra.job.chdir=true") as done:
        for r in done.returns[0]:
            assert r.return_value.status == "ok" and r.return_value.population_size == 2
            ran = json.loads((Path(r.working_dir) / "result.json").read_text())  # its job dir
            assert Path(r.working_dir).parent == tmp_path / "sweep" and ran["overrides"] == r.overrides


@pytest.mark.slow
def test_the_population_launcher_trains_sherlockeds_task_only(sweep, tmp_path, capsys):
    """The CLI's task and the tests' are sherlocked's: trained as populations, not one by one."""
    with sweep(tmp_path / "sweep", "act3=relu,tanh", "hydra/launcher=population") as done:
        assert [r.return_value.population_size for r in done.returns[0]] == [2, 2]
        assert "plan: 2 jobs" in capsys.readouterr().out
    out = subprocess.run(
        [sys.executable, "-c", "import sherlocked.train as t; print(t.main.__wrapped__.trains_populations)"],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "True", out.stderr[-2000:]
