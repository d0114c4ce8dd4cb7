"""Bad input of every kind stops before anything is written: one line `sherlocked: ...` naming the value, exit code
2, no run dir, no sweep dir, as a single run and as a population sweep (issue 26).

Every config key a run reads is driven with values of the wrong type, the wrong sign and NaN, through
sherlocked.train's entry point in this process (as the command line runs it: a subprocess costs ~8 s of imports
here); two real command lines prove the rest.
"""

import copy
import functools
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf, open_dict

from sherlocked.hydra_side import adapter, errors
from sherlocked.spec.config import CONFIG_DIR
from sherlocked.sweep.preflight import validate_or_exit

# The command: a real run of two steps, were nothing refused.
BASE = ["dataset=mnist_5k", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1"]
BASE += ["diagnostics=off", "logger=off", "trainer.enable_progress_bar=false"]
POPULATION = ["-m", "hydra/launcher=population"]
WRONG_TYPE, NAN, NEGATIVE = "abc", "nan", "-1"

# Every key a run reads (conf/train.yaml and its groups), a good value of it, and bad ones: wrong types, wrong signs,
# NaN, infinity, out of range. The first bad value (the issue's own where it names one) goes through both command
# lines, all of them through the checks. A key its group lacks is given its group first (SETUP).
KEYS = {
    "act1": ("relu", ["swish", "5", NAN]),
    "seed": ("0", [WRONG_TYPE, "1.5", NAN, "true"]),
    "checkpoint_every_s": ("30", [WRONG_TYPE, "-5", NAN, "true"]),
    "compile": ("false", ["fast", "5", NAN]),
    "dataset": ("mnist_5k", ["mnist5k"]),
    "dataset.batch_size": ("32", [WRONG_TYPE, "0", NEGATIVE, "1.5", NAN, "true"]),
    "dataset.test_batch_size": ("1000", ["0", WRONG_TYPE, NEGATIVE, "1.5", NAN]),
    "dataset.mean": ("[0.1307]", [WRONG_TYPE, "0.5", "[0.1,0.2]", "[abc]", "[nan]", "[inf]"]),
    "dataset.std": ("[0.3081]", ["0", WRONG_TYPE, "[0]", "[-0.3]", "[nan]", "[0.3,0.3]"]),
    "dataset.input_dim": ("784", ["100", WRONG_TYPE, NEGATIVE, NAN]),
    "dataset.num_classes": ("10", ["5", WRONG_TYPE, "0", NAN]),
    "dataset.download": ("false", ["maybe", "1", NAN]),
    "dataset.root": ("data", ["null"]),
    "dataset.fallback_dirs": ("[]", [WRONG_TYPE, "[1]"]),
    "model.widths": ("[784,500,256,10]", ["5", WRONG_TYPE, "[784,abc,256,10]", "[784,0,256,10]", "[784,nan,256,10]"]),
    "model.output_activation": ("true", ["maybe", "1", NAN]),
    "model.batch_norm": ("none", ["first", "1.5", NAN]),
    "model.init": ("default", ["orthogonal", "5"]),
    "model.optimizer.lr": ("0.01", [NAN, "inf", WRONG_TYPE, "0", NEGATIVE, "true"]),
    "model.optimizer.momentum": ("0.5", [NEGATIVE, WRONG_TYPE, NAN, "inf", "true"]),
    "model.optimizer.weight_decay": ("0", [NEGATIVE, WRONG_TYPE, NAN, "inf"]),
    "model.optimizer.fused": ("true", ["maybe", "1"]),
    "model.optimizer.betas": ("[0.9,0.999]", ["[0.9]", WRONG_TYPE, "[0.9,1.0]", "[-0.1,0.9]", "[nan,0.9]"]),
    "model.optimizer.eps": ("1e-8", ["0", WRONG_TYPE, NEGATIVE, NAN]),
    "trainer.max_epochs": ("1", [WRONG_TYPE, "0", NEGATIVE, "1.5", NAN]),
    "trainer.accelerator": ("cpu", ["gpuu", "5"]),
    "trainer.devices": ("1", ["2", "5", "0", NEGATIVE, "auto", "[0,1]", "[0]", WRONG_TYPE, "1.5"]),
    "+trainer.num_nodes": ("1", ["2", WRONG_TYPE]),
    "+trainer.strategy": ("auto", ["ddp", "ddp_spawn"]),
    "trainer.log_every_n_steps": ("50", ["0", WRONG_TYPE, NEGATIVE, NAN]),
    "trainer.num_sanity_val_steps": ("0", ["-5", WRONG_TYPE, "1.5", NAN]),
    "trainer.enable_checkpointing": ("false", ["maybe", "1"]),
    "trainer.enable_model_summary": ("false", ["maybe", "1"]),
    "trainer.enable_progress_bar": ("false", ["maybe", "1"]),
    "trainer.logger": ("false", [WRONG_TYPE, "5"]),
    "++trainer.limit_train_batches": ("2", ["0", NEGATIVE, "1.5", WRONG_TYPE, NAN, "true"]),
    "++trainer.limit_val_batches": ("1", ["0", NEGATIVE, "2.5", WRONG_TYPE, NAN]),
    "diagnostics.enabled": ("false", ["maybe", "1"]),
    "diagnostics.interval": ("100", ["0", WRONG_TYPE, NEGATIVE, "1.5", NAN]),
    "diagnostics.probe_size": ("256", [NEGATIVE, WRONG_TYPE, "0", NAN]),
    "diagnostics.histograms": ("false", ["maybe", "1"]),
}
GROUPS = ("dataset",)  # a config group's option: no value to set in a composed config
SETUP = {"model.optimizer.betas": ["model/optimizer=adam"], "model.optimizer.eps": ["model/optimizer=adam"]}
EVERY_VALUE = [(key, bad) for key, (_, values) in KEYS.items() for bad in values]
# The other values (momentum=abc, checkpoint_every_s=-5, lr=inf, devices=5) besides the first of each key.
COMMAND_LINE = [(key, values[0]) for key, (_, values) in KEYS.items()] + [
    ("model.optimizer.momentum", WRONG_TYPE),
    ("checkpoint_every_s", "-5"),
    ("model.optimizer.lr", "inf"),
    ("trainer.devices", "5"),
]


def named(cases: list[tuple[str, str]]) -> dict:
    return {"argvalues": cases, "ids": [f"{key}={bad}" for key, bad in cases]}


def command_line(arguments: list[str], where: Path, monkeypatch, capsys) -> tuple[int, str]:
    """`python -m sherlocked.train <BASE> <arguments>` run in this process in `where`: its exit code and stderr."""
    import sherlocked.train

    monkeypatch.chdir(where)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    options = [a for a in arguments if a in POPULATION]  # Hydra's options come before the overrides
    overrides = [a for a in arguments if a not in POPULATION]
    argv = ["train.py", *options, *BASE, f"hydra.run.dir={where / 'run'}", f"hydra.sweep.dir={where / 'sweep'}"]
    monkeypatch.setattr(sys, "argv", [*argv, *overrides])  # later overrides win: a case may set the dirs
    with pytest.raises(SystemExit) as stopped, errors.reported():
        sherlocked.train.main()
    return stopped.value.code, capsys.readouterr().err


def assert_refused(code: int, err: str, where: Path, *named: str) -> str:
    """One line, `sherlocked: ` first, naming `named`; exit code 2; nothing written under `where`."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("sherlocked: "), (code, err[-3000:])
    assert all(name in lines[0] for name in named), lines[0]
    assert sorted(p.name for p in where.iterdir()) == [], "written although refused"
    return lines[0]


@functools.cache
def composed(*setup: str) -> DictConfig:
    """The issue's run, composed once (with its optimizer group, for Adam's keys)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", [*BASE, *setup])


@pytest.mark.parametrize(("key", "bad"), **named([case for case in EVERY_VALUE if case[0] not in GROUPS]))
def test_every_bad_value_of_every_key_is_refused_in_one_line(key, bad, capsys):
    """The whole grid through the checks a run and a sweep make first: the command line's value set as Hydra parses
    it into the run's composed config (a group's option is a composition error: on the command line below)."""
    config = copy.deepcopy(composed(*SETUP.get(key, [])))
    (override,) = adapter.parse([f"{key}={bad}"])
    with open_dict(config):
        OmegaConf.update(config, override.key_or_group, override.value(), merge=False, force_add=True)
    with pytest.raises(SystemExit) as stopped:
        validate_or_exit(config)
    lines = capsys.readouterr().err.strip().splitlines()
    assert stopped.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"sherlocked: {key.lstrip('+')}") or f" {key.lstrip('+')}" in lines[0], lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(("key", "bad"), **named(COMMAND_LINE))
def test_a_single_run_with_a_bad_value_is_one_line(key, bad, tmp_path, monkeypatch, capsys):
    code, err = command_line([*SETUP.get(key, []), f"{key}={bad}"], tmp_path, monkeypatch, capsys)
    assert_refused(code, err, tmp_path, key.lstrip("+"))


@pytest.mark.slow
@pytest.mark.parametrize(("key", "bad"), **named(COMMAND_LINE))
def test_a_sweep_with_a_bad_value_among_good_ones_is_one_line(key, bad, tmp_path, monkeypatch, capsys):
    """Every swept value is checked before the first job: the bad one comes second."""
    good = KEYS[key][0]
    code, err = command_line([*POPULATION, *SETUP.get(key, []), f"{key}={good},{bad}"], tmp_path, monkeypatch, capsys)
    assert_refused(code, err, tmp_path, key.lstrip("+"))


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["model.optimizer.momentum=0.5,-1"], "sherlocked: model.optimizer.momentum=-1 must be a finite number >= 0"),
        (["model.optimizer.weight_decay=0,-1"], "sherlocked: model.optimizer.weight_decay=-1 must be a finite number"),
        (["model.optimizer.lr=0.1,nan", "seed=0,1"], "sherlocked: model.optimizer.lr=nan must be a finite positive"),
        (["seed=range(0)"], "sherlocked: seed=range(0): the sweep of seed has no values"),
        (
            ["act1=relu", "+hydra.sweeper.params.seed='range(3,3)'"],
            "sherlocked: seed=range(3,3): the sweep of seed has",
        ),
        (
            ["model.optimizer.lr=interval(0.001,0.1)"],
            "sherlocked: model.optimizer.lr=interval(0.001,0.1): hydra/sweeper=sherlocked runs a grid of listed values "
            "(a,b,c or range(...)); an interval needs a search sweeper such as hydra/sweeper=optuna",
        ),
        (["trainer.devices=2", "seed=0,1"], "sherlocked: trainer.devices=2 must be 1 (with trainer=gpu: one GPU"),
        (
            ["trainer=gpu", "trainer.devices=[1]"],
            "sherlocked: trainer.devices=[1]: each population of a sweep sees one",
        ),
        (
            ["model/optimizer=adam", "model.optimizer.betas=[0.9]"],
            "sherlocked: model.optimizer.betas=[0.9] must be two",
        ),
        (["model.output_activation=true,maybe"], "sherlocked: model.output_activation='maybe' must be true or false"),
    ],
)
def test_each_value_of_a_sweep_is_checked_before_its_first_job(arguments, line, tmp_path, monkeypatch, capsys):
    code, err = command_line([*POPULATION, *arguments], tmp_path, monkeypatch, capsys)
    assert assert_refused(code, err, tmp_path).startswith(line)


def test_an_interval_with_hydras_basic_sweeper_is_one_line_too(tmp_path, monkeypatch, capsys):
    code, err = command_line(["-m", "hydra/sweeper=basic", "seed=interval(0,3)"], tmp_path, monkeypatch, capsys)
    assert "hydra/sweeper=basic runs a grid" in assert_refused(code, err, tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
@pytest.mark.parametrize("mode", [[], POPULATION], ids=["run", "sweep"])
@pytest.mark.parametrize("gpu", [["trainer=gpu"], ["trainer.accelerator=cuda", "trainer.devices=[0]"]])
def test_a_gpu_asked_for_where_there_is_none_is_one_line(mode, gpu, tmp_path, monkeypatch, capsys):
    code, err = command_line([*mode, *gpu], tmp_path, monkeypatch, capsys)
    line = assert_refused(code, err, tmp_path)
    assert line.startswith("sherlocked: trainer.accelerator=") and "no CUDA GPU is visible here" in line
    assert line.endswith("use trainer=cpu")


@pytest.mark.parametrize(("backend", "asked"), [("local", True), ("ray", False), ("submitit", False)])
def test_only_a_sweep_that_trains_here_asks_this_machine_for_its_gpu(backend, asked, monkeypatch):
    """A SLURM sweep from a login node without a GPU: its elements have theirs."""
    from sherlocked.sweep import preflight

    overrides = ["hydra/launcher=population", f"hydra.launcher.backend={backend}", "trainer=gpu"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        config = compose("train", overrides, return_hydra_config=True)
    asks = []
    monkeypatch.setattr(preflight, "check_gpu", asks.append)
    preflight.devices_or_exit(config, [config])
    assert bool(asks) == asked


@pytest.mark.parametrize("mode", [[], POPULATION], ids=["run", "sweep"])
def test_an_output_dir_that_is_a_file_is_one_line(mode, tmp_path, monkeypatch, capsys):
    where = tmp_path / "cwd"
    where.mkdir()
    (tmp_path / "file").write_text("not a folder")
    key = "hydra.sweep.dir" if mode else "hydra.run.dir"
    code, err = command_line([*mode, f"{key}={tmp_path / 'file' / 'sub'}"], where, monkeypatch, capsys)
    line = assert_refused(code, err, where, key)
    assert f"{tmp_path / 'file'} is not a folder" in line
    assert (tmp_path / "file").read_text() == "not a folder"


def command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "sherlocked.train", *arguments, *BASE]


def read_only(path: Path, argv: list[str]) -> list[str]:
    """`argv` run where `path` is mounted read-only (its own mount namespace: root cannot write there either)."""
    mount = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", mount, str(path), *argv]


def test_the_command_line_refuses_a_sweep_into_read_only_storage_in_one_line(tmp_path):
    storage = tmp_path / "storage"
    storage.mkdir()
    argv = command(*POPULATION, "seed=0,1", f"hydra.sweep.dir={storage / 'sweep'}")
    out = subprocess.run(read_only(storage, argv), cwd=tmp_path, capture_output=True, text=True)
    if "unshare" in out.stderr and out.returncode != 2:
        pytest.skip(f"no user namespaces here: {out.stderr.strip()}")
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip() == (
        f"sherlocked: hydra.sweep.dir={storage / 'sweep'}: {storage} cannot be written (its file system is "
        "read-only); choose a folder that can be written"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["storage"] and list(storage.iterdir()) == []


def test_the_command_line_refuses_a_run_on_several_devices_in_one_line(tmp_path):
    """Lightning's DDP would start this command again on each of 5 devices: tracebacks, then exit code 137."""
    out = subprocess.run(command("trainer.devices=5"), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "sherlocked: trainer.devices=5 must be 1 (with trainer=gpu: one GPU, e.g. [0]): a population trains on one "
        "device; for several GPUs run a sweep (-m hydra/launcher=population), one worker per GPU "
        "(hydra.launcher.workers) or hydra.launcher.backend=ray|submitit"
    ], out.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []
