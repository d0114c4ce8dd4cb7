"""Every output path comes from one place, conf/paths/default.yaml (issue 28, item 5): paths.outputs=DIR moves a
command's single runs, sweeps and --plan's figures; SHERLOCKED_OUTPUTS=DIR moves them for every command, the report's
listing, the board's default folder and the Makefile's too; hydra.run.dir and hydra.sweep.dir still place one."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from sherlocked import board
from sherlocked.hydra_side import errors
from sherlocked.records import layout
from sherlocked.report.cli import main as report_main
from sherlocked.spec.config import CONFIG_DIR, OUTPUT_PATHS, identity
from tests.conftest import SMALL

REPO = Path(__file__).parents[1]
ENV = "SHERLOCKED_OUTPUTS"


def train(arguments: list[str], where: Path, monkeypatch) -> None:
    """`python -m sherlocked.train <arguments>` run in this process in `where` (as tests/test_bad_input.py runs it)."""
    import sherlocked.train

    monkeypatch.chdir(where)
    options = [a for a in arguments if a.startswith("-")]  # Hydra's options come before the overrides
    overrides = [a for a in arguments if not a.startswith("-")]
    monkeypatch.setattr(sys, "argv", sherlocked.train.plan_flag(["train.py", *options, *overrides]))
    try:
        with errors.reported():
            sherlocked.train.main()
    except SystemExit as stopped:
        assert not stopped.code, stopped.code


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", list(overrides), return_hydra_config=True)


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """Where the outputs go instead of ./outputs; the working dir (tmp_path/cwd) must stay empty."""
    monkeypatch.delenv(ENV, raising=False)
    (tmp_path / "cwd").mkdir()
    return tmp_path / "elsewhere"


@pytest.mark.slow
def test_paths_outputs_moves_every_output(elsewhere, tmp_path, data_root, monkeypatch, capsys):
    """One override moves a single run, a sweep and --plan's figures; the same root given as SHERLOCKED_OUTPUTS is
    where the report lists sweeps and the board looks by default; nothing goes to ./outputs."""
    cwd, widths = tmp_path / "cwd", "model.widths=[784,16,12,10]"
    base = [*SMALL, widths, f"dataset.root={data_root}", "+trainer.limit_train_batches=2", "diagnostics=off"]
    base += [f"paths.outputs={elsewhere}"]
    train(base, cwd, monkeypatch)
    (run,) = (elsewhere / "runs").glob("*/*/result.json")  # runs/<date>/<time>/
    train(["-m", "hydra/launcher=population", *base, "study=s", "seed=0,1"], cwd, monkeypatch)
    assert len(list((elsewhere / "sweeps" / "s").glob("*/result.json"))) == 2
    assert layout.results_table(elsewhere / "sweeps" / "s").is_dir()
    figures = elsewhere / "bench" / "bench_cpu.json"  # what python -m sherlocked.bench measured, paths.bench
    figures.parent.mkdir()
    figures.write_text(json.dumps({"device": "cpu", "population_gflops": 50.0}))
    capsys.readouterr()
    train(["--plan", *base, "study=p", "seed=0,1,2"], cwd, monkeypatch)
    (time_line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  time: ")]
    assert time_line.endswith(f"{figures})") and "50.0 GFLOP/s" in time_line, time_line
    assert not (elsewhere / "sweeps" / "p").exists()  # a plan writes nothing
    assert list(cwd.iterdir()) == []  # no outputs/ where the commands ran

    monkeypatch.setenv(ENV, str(elsewhere))  # every command's root: the report's and the board's default
    report_main([])
    assert capsys.readouterr().out.startswith(f"Sweeps to report: {elsewhere / 'sweeps' / 's'}. ")
    served = []
    monkeypatch.setattr(board, "tensorboard", lambda spec, extra, summary: served.append((spec, summary)) or 0)
    monkeypatch.setattr(board.signal, "signal", lambda *stop: None)  # the test's own Ctrl-C stays pytest's
    assert board.main([]) == 0
    ((spec, summary),) = served
    assert summary and f"s:{elsewhere / 'sweeps' / 's' / layout.TENSORBOARD}" in spec.split(",")
    assert spec.endswith(f",runs:{elsewhere / 'runs'}") and run.is_relative_to(elsewhere / "runs")


def test_the_environment_moves_runs_and_sweeps_and_hydras_dirs_still_place_one(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    default = composed()
    assert (
        str(default.hydra.run.dir).startswith("outputs/runs/") and default.hydra.sweep.dir == "outputs/sweeps/default"
    )
    monkeypatch.setenv(ENV, str(tmp_path / "env"))
    moved = composed("study=x")
    assert str(moved.hydra.run.dir).startswith(f"{tmp_path}/env/runs/")
    assert moved.hydra.sweep.dir == f"{tmp_path}/env/sweeps/x" and moved.paths.bench == f"{tmp_path}/env/bench"
    overridden = composed("paths.outputs=/o", "study=x")  # the command line over the environment
    assert overridden.hydra.sweep.dir == "/o/sweeps/x" and str(overridden.hydra.run.dir).startswith("/o/runs/")
    placed = composed("paths.outputs=/o", "hydra.run.dir=/r", "hydra.sweep.dir=/s")
    assert (placed.hydra.run.dir, placed.hydra.sweep.dir) == ("/r", "/s")


def test_where_outputs_go_is_no_part_of_a_job(monkeypatch):
    """Neither a job's dir name nor its identity: the same job written elsewhere is the same job."""
    monkeypatch.delenv(ENV, raising=False)
    moved = composed("paths.outputs=/o", "paths.bench=/b", "act2=tanh")
    assert moved.hydra.job.override_dirname == "act2=tanh"
    here, there = (
        OmegaConf.to_container(OmegaConf.masked_copy(c, [k for k in c if k != "hydra"]), resolve=True)
        for c in (composed("act2=tanh"), moved)
    )
    assert here["paths"] != there["paths"] and identity(here) == identity(there)


@pytest.mark.slow
def test_one_declaration_read_the_same_by_the_config_the_layout_and_the_makefile(elsewhere, monkeypatch):
    declared = OmegaConf.load(layout.PATHS)
    assert tuple(declared) == OUTPUT_PATHS == tuple(f.name for f in dataclasses.fields(layout.OutputPaths))
    assert layout.output_paths() == layout.OutputPaths(
        *map(Path, ["outputs", "outputs/runs", "outputs/sweeps", "outputs/bench"])
    )
    assert dict(composed().paths) == {name: str(getattr(layout.output_paths(), name)) for name in OUTPUT_PATHS}
    monkeypatch.setenv(ENV, str(elsewhere))
    assert layout.output_paths().sweeps == elsewhere / "sweeps" and layout.output_paths("/b").runs == Path("/b/runs")
    printed = subprocess.run(
        [sys.executable, "-m", "sherlocked.records.layout", "sweeps", "bench"], capture_output=True, text=True, cwd=REPO
    )
    assert printed.stdout.splitlines() == [str(elsewhere / "sweeps"), str(elsewhere / "bench")]
    make = ["make", "--no-print-directory", "-n", "-C", str(REPO), f"PYTHON={sys.executable}"]
    shown = subprocess.run([*make, "report", "STUDY=s", "clean"], capture_output=True, text=True).stdout.splitlines()
    assert f"{sys.executable} -m sherlocked.report {elsewhere}/sweeps/s" in shown
    assert f"rm -rf {elsewhere}/runs {elsewhere}/sweeps {elsewhere}/bench .pytest_cache .ruff_cache .installed" in shown
