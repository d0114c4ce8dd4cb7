"""Real Hydra multiruns: in-process with hydra-core's hydra_sweep_runner, and once through the command line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sherlocked.report.cli import main as report_main
from sherlocked.report.runs import read_runs
from tests.conftest import SMALL

GRID = ["act2=relu,sigmoid", "act3=relu,tanh", "seed=0,1"]
WIDTHS = "model.widths=[784,16,12,10]"


def results(directory: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in directory.rglob("result.json")}


@pytest.mark.slow
def test_a_sweep_writes_one_result_per_job_in_dirs_named_by_overrides_and_resumes(sweep, tmp_path, capsys):
    with sweep(tmp_path / "sweep", *GRID) as first:
        found = results(tmp_path / "sweep")
        assert len(found) == 8 and all(r["status"] == "ok" for r in found.values())
        name = "act2=sigmoid,act3=relu,dataset.batch_size=16,model.widths=[784,16,12,10],seed=1,trainer.max_epochs=2"
        assert found[name]["hparams"]["act2"] == "sigmoid" and found[name]["hparams"]["seed"] == 1
        assert all(job.return_value.status == "ok" for job in first.returns[0])
        out = capsys.readouterr().out
        assert "sweep 1/8 jobs: 1 ok" in out and "ETA" in out  # then at most a line a second
        assert out.strip().splitlines()[-1].endswith("8/8 jobs: 8 ok, 0 diverged, 0 failed, 0 skipped")

        stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sweep").rglob("result.json")}
        with sweep(tmp_path / "sweep", *GRID) as again:
            assert all(job.return_value.skipped for job in again.returns[0])
            assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "sweep").rglob("result.json")}
            assert "8/8 jobs: 0 ok, 0 diverged, 0 failed, 8 skipped" in capsys.readouterr().out


@pytest.mark.slow
def test_a_changed_config_reruns_the_job_and_replaces_its_result(sweep, tmp_path):
    with sweep(tmp_path / "sweep", "act3=relu,tanh"):
        path = next((tmp_path / "sweep").glob("act3=tanh*/result.json"))
        stale = json.loads(path.read_text())
        stale["config"]["model"]["init"] = "xavier"  # as if the job had run with another config
        path.write_text(json.dumps(stale))
        with sweep(tmp_path / "sweep", "act3=relu,tanh") as again:
            skipped = {job.return_value.hparams["act3"]: job.return_value.skipped for job in again.returns[0]}
            assert skipped == {"relu": True, "tanh": False}
            assert json.loads(path.read_text())["config"]["model"]["init"] == "default"


@pytest.mark.slow
@pytest.mark.parametrize("spelled_out", ["act1=relu", "model.optimizer.lr=0.01"])  # each its default
def test_the_same_jobs_typed_otherwise_are_finished_and_never_counted_twice(sweep, tmp_path, capsys, spelled_out):
    grid = ["hydra/launcher=population", "act2=relu,sigmoid", "seed=0,1"]
    # The rerun: other dirs, the same four jobs.
    with sweep(tmp_path / "sweep", *grid), sweep(tmp_path / "sweep", *grid, spelled_out) as again:
        assert all(job.return_value.skipped for job in again.returns[0])
        assert "4/4 jobs: 0 ok, 0 diverged, 0 failed, 4 skipped" in capsys.readouterr().out
        assert len(results(tmp_path / "sweep")) == 4  # nothing trained, no dir written
        runs = read_runs(tmp_path / "sweep")
        assert len(runs) == 4 and sorted(runs.groupby("act2")["seed"].count()) == [2, 2]


@pytest.mark.slow
def test_a_job_listed_twice_trains_once_and_counts_once(sweep, tmp_path, capsys):
    with sweep(tmp_path / "sweep", "hydra/launcher=population", "seed=0,1,0") as first:
        returns = [job.return_value for job in first.returns[0]]
        expected = [("ok", False, 2), ("ok", False, 2), ("ok", True, 2)]
        assert [(r.status, r.skipped, r.population_size) for r in returns] == expected
        assert returns[2].final_test_acc == returns[0].final_test_acc
        out = capsys.readouterr().out
        assert "plan: 3 jobs, 0 finished before, 1 the same job as another of the sweep (trained once)" in out
        assert out.strip().splitlines()[-1].endswith("3/3 jobs: 2 ok, 0 diverged, 0 failed, 1 skipped")
        assert len(results(tmp_path / "sweep")) == 2 and len(read_runs(tmp_path / "sweep")) == 2


@pytest.mark.slow
def test_a_failing_job_is_recorded_the_rest_complete_and_the_exit_code_counts_it(sweep, tmp_path, capsys):
    with (
        pytest.raises(SystemExit) as stopped,
        sweep(tmp_path / "sweep", "act3=relu,tanh", "model.optimizer._target_=torch.optim.SGD,nope.Nope"),
    ):
        pass
    assert stopped.value.code == 1
    found = results(tmp_path / "sweep")
    statuses = sorted(r["status"] for r in found.values())
    assert statuses == ["failed", "failed", "ok", "ok"]
    failed = [r for r in found.values() if r["status"] == "failed"]
    assert all(
        "nope.Nope" in r["error"] and r["config"]["model"]["optimizer"]["_target_"] == "nope.Nope" for r in failed
    )
    assert "4/4 jobs: 2 ok, 0 diverged, 2 failed" in capsys.readouterr().out.strip().splitlines()[-1]
    runs = read_runs(tmp_path / "sweep")
    assert (runs["status"] == "failed").sum() == 2


@pytest.mark.slow
def test_the_report_of_a_real_sweep_matches_its_result_files(sweep, tmp_path, capsys):
    with sweep(tmp_path / "sweep", *GRID):
        report_main([str(tmp_path / "sweep")])
        out = capsys.readouterr().out
        assert "report:" in out and "the 4 configurations by mean, best first:" in out
        import pandas as pd

        table = pd.read_csv(tmp_path / "sweep" / "table.csv")
        assert len(table) == 4 and set(table.columns) >= {"act1", "act2", "act3", "seed0", "seed1", "mean", "n"}
        for row in table.itertuples():
            accs = [
                100 * r["final_test_acc"]
                for r in results(tmp_path / "sweep").values()
                if (r["hparams"]["act2"], r["hparams"]["act3"]) == (row.act2, row.act3)
            ]
            assert row.mean == pytest.approx(sum(accs) / len(accs)) and row.n == 2


@pytest.mark.slow
def test_the_multirun_command_line(data_root, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sherlocked.train",
            "-m",
            "act3=relu,tanh",
            *SMALL,
            WIDTHS,
            f"dataset.root={data_root}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "trainer.max_epochs=1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1].endswith("2/2 jobs: 2 ok, 0 diverged, 0 failed, 0 skipped")
    assert sorted(p.parent.name.split(",")[0] for p in (tmp_path / "sweep").rglob("result.json")) == [
        "act3=relu",
        "act3=tanh",
    ]


@pytest.mark.slow
def test_a_sweep_declared_in_hydra_sweeper_params_is_checked_counted_and_summed_up(sweep, tmp_path, capsys):
    with sweep(tmp_path / "sweep", "+hydra.sweeper.params.act3='relu,tanh'", "seed=0,1", "hydra/launcher=population"):
        assert len(list((tmp_path / "sweep").rglob("result.json"))) == 4
        out = capsys.readouterr().out
        assert "sweep 1/4 jobs" in out and out.strip().endswith("4/4 jobs: 4 ok, 0 diverged, 0 failed, 0 skipped")
    bad = [sys.executable, "-m", "sherlocked.train", "-m", "+hydra.sweeper.params.act3='relu,swish'", "seed=0,1"]
    out = subprocess.run([*bad, "hydra.sweep.dir=sweep"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().startswith("sherlocked: act3: unknown activation 'swish'")
    assert not (tmp_path / "sweep").exists()


def test_a_sweep_ends_with_the_studys_answer_above_its_summary(sweep, tmp_path, capsys):
    with sweep(tmp_path / "sweep", "act2=sigmoid,tanh", "act3=relu", "seed=0,1", "hydra/launcher=population"):
        lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("answer: (x, sigmoid, relu) runs reach ") and "(n = 2)" in lines[-2], lines[-3:]
    assert f"The report: python -m sherlocked.report {tmp_path / 'sweep'}" in lines[-2]
    assert lines[-1].endswith("4/4 jobs: 4 ok, 0 diverged, 0 failed, 0 skipped")
