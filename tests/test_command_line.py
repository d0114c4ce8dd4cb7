"""Mistakes typed on the command line: one line naming the valid choices, exit code 2, nothing written."""

import subprocess
import sys

import pytest

from sherlocked.hydra_side import errors
from tests.conftest import SMALL

MISTAKES = {  # what is typed: what the one line says
    "trainer.max_epoch=2": "sherlocked: trainer.max_epoch: trainer has no key max_epoch (did you mean max_epochs?); "
    "its keys: accelerator, devices, max_epochs,",
    "+trainer.max_epoch=2": "sherlocked: trainer.max_epoch: Lightning's Trainer takes no max_epoch (did you mean "
    "max_epochs?); its arguments: accelerator,",
    "dataset=mnist5k": "sherlocked: dataset=mnist5k: no such dataset (did you mean mnist_5k?); choose from cifar10, "
    "fashion_mnist, mnist, mnist_5k",
    "model/optimizer=sgdd": "sherlocked: model/optimizer=sgdd: no such model/optimizer (did you mean sgd?); choose "
    "from adam, adamw, sgd",
    "actt1=relu": "sherlocked: actt1: the config has no key actt1 (did you mean act1?); its keys: act1, act2, act3,",
    "act1=relu,": "sherlocked: act1=relu,: not an override Hydra can read",
    "+seed=3": "sherlocked: Could not append to config. An item is already at 'seed'. Either remove + prefix: "
    "'seed=3' Or add a second + to add or override 'seed': '++seed=3'",
}


def train(tmp_path, *arguments: str, data_root) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "sherlocked.train", *arguments, *SMALL, f"dataset.root={data_root}"]
    command += [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "sweep"])
def test_a_mistyped_key_says_one_line_with_the_key_meant_and_writes_nothing(tmp_path, data_root, multirun):
    sweep = ["-m", "seed=0,1"] if multirun else []
    out = train(tmp_path, *sweep, "trainer.max_epoch=2", data_root=data_root)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]  # one line
    assert out.stderr.startswith(MISTAKES["trainer.max_epoch=2"])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run dir, no sweep dir, no outputs/


@pytest.mark.parametrize("mistake", MISTAKES)
def test_every_mistake_is_one_line_naming_the_choices(mistake, monkeypatch, tmp_path, capsys, data_root):
    """In-process: the entry point as the command line runs it (the one above), each mistake once."""
    import sherlocked.train

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["train.py", mistake, *SMALL, f"dataset.root={data_root}"])
    with pytest.raises(SystemExit) as stopped, errors.reported():
        sherlocked.train.main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith(MISTAKES[mistake]) and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_sweep_value_naming_no_option_is_one_line(tmp_path, data_root):
    out = train(tmp_path, "-m", "dataset=mnist_5k,mnist5k", data_root=data_root)
    assert out.returncode == 2 and out.stderr.strip() == "sherlocked: " + MISTAKES["dataset=mnist5k"].split(": ", 1)[1]
    assert not (tmp_path / "sweep").exists()


def test_an_error_not_about_the_command_line_is_hydras_report_as_before(monkeypatch, tmp_path, capsys):
    import sherlocked.train

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["train.py", "model.widths.x=3"])
    with pytest.raises(SystemExit) as stopped, errors.reported():
        sherlocked.train.main()
    assert stopped.value.code == 1 and "ValueError" in capsys.readouterr().err
    assert "HYDRA_FULL_ERROR" not in __import__("os").environ


@pytest.mark.slow
def test_a_single_run_says_its_result_and_nothing_else(tmp_path, data_root):
    """No GPU/TPU banners, no advert for a logging service, no note on checkpoints' defaults, no warning that is not
    about the run."""
    out = train(tmp_path, "checkpoint_every_s=0", data_root=data_root)  # a checkpoint each of its 2 epochs
    assert out.returncode == 0, out.stderr[-2000:]
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["final test accuracy", "result", "TensorBoard"], lines


# `python -m sherlocked.train ARGS`, saying at its exit whether torch (or Lightning) was ever imported.
IMPORTS_TORCH = """
import atexit, runpy, sys
atexit.register(lambda: print("imported:", sorted({"torch", "lightning"} & set(sys.modules))))
sys.argv = ["sherlocked.train", *sys.argv[1:]]
runpy.run_module("sherlocked.train", run_name="__main__")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "arguments",
    [["act2=sigmod"], ["-m", "act2=relu,sigmod"], ["--help"], ["--plan", "act2=relu,sigmoid", "seed=0,1"]],
    ids=["a typo", "a typo in a sweep", "--help", "--plan"],
)
def test_the_command_line_answers_without_importing_torch_until_a_job_trains(tmp_path, arguments):
    command = [sys.executable, "-c", IMPORTS_TORCH, *arguments, "dataset=mnist_5k"]
    done = subprocess.run([*command, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, capture_output=True)
    assert done.returncode in (0, 2), done.stderr[-2000:]
    assert done.stdout.decode().strip().splitlines()[-1] == "imported: []"


@pytest.mark.parametrize(
    "arguments, said",
    [
        (["--plna"], "sherlocked: --plna: no such option (did you mean --plan?); options: --plan, --help,"),
        (["-m", "--cfg", "job"], "sherlocked: Only one of --run, --multirun, --cfg, --info and --shell_completion"),
    ],
)
def test_a_mistyped_option_says_one_line_naming_the_options(tmp_path, arguments, said):
    done = subprocess.run([sys.executable, "-m", "sherlocked.train", *arguments], cwd=tmp_path, capture_output=True)
    assert done.returncode == 2 and done.stderr.decode().strip().splitlines() == [done.stderr.decode().strip()]
    assert done.stderr.decode().startswith(said), done.stderr.decode()
    assert list(tmp_path.iterdir()) == []
