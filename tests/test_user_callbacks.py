"""A user's Lightning callbacks (+trainer.callbacks=[...]) run beside sherlocked's own, in a single run and in a
population sweep, checkpointing on (the default); one that cannot work on a population is refused in one line,
exit code 2, nothing written (issue 28, item 6)."""

import json
import os
import re
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sherlocked.spec.checks import validate
from sherlocked.spec.config import ConfigError
from sherlocked.training.engine import run
from tests.test_bad_input import POPULATION, assert_refused, command_line

RECORDED = "SHERLOCKED_TEST_RECORDED"  # where Recorder writes: one JSON line a hook
RECORDER = "{_target_:tests.test_user_callbacks.Recorder}"


class Recorder(Callback):
    """A user's callback: what it saw, one JSON line a hook, into the file $SHERLOCKED_TEST_RECORDED (a file, so
    that it tells whichever process trains)."""

    def record(self, **seen) -> None:
        with open(os.environ[RECORDED], "a") as file:
            file.write(json.dumps(seen) + "\n")

    def on_train_start(self, trainer, pl_module) -> None:
        callbacks = [type(callback).__name__ for callback in trainer.callbacks]
        self.record(hook="start", callbacks=callbacks, members=len(pl_module.net))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.record(hook="epoch", epoch=trainer.current_epoch)


@pytest.fixture
def recorded(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "recorded.jsonl"
    monkeypatch.setenv(RECORDED, str(path))
    return path


def hooks(recorded: Path) -> list[dict]:
    return [json.loads(line) for line in recorded.read_text().splitlines()]


@pytest.mark.parametrize("given", [f"[{RECORDER}]", f"{{recorder:{RECORDER}}}"], ids=["list", "mapping"])
def test_a_users_callback_runs_beside_sherlockeds_own_in_a_single_run(make_cfg, tmp_path, recorded, given):
    cfg = make_cfg(f"+trainer.callbacks={given}")
    assert cfg.checkpoint_every_s == 30  # checkpointing on: the case that dropped a user's callbacks
    (result,) = run([cfg], [tmp_path / "run"])
    assert result.status == "ok"
    start, *epochs = hooks(recorded)
    assert start["hook"] == "start" and start["members"] == 1
    assert {"Recorder", "PopulationCheckpoint"} <= set(start["callbacks"])  # the user's and sherlocked's
    assert epochs == [{"hook": "epoch", "epoch": 0}, {"hook": "epoch", "epoch": 1}]


def test_a_users_callbacks_run_beside_sherlockeds_own_in_a_population_sweep(sweep, tmp_path, recorded, monkeypatch):
    """The Recorder and Lightning's LearningRateMonitor (logging through the Trainer's logger, trainer.logger=true:
    its events in the sweep's dir, not in the working dir) in one population of two members."""
    monkeypatch.chdir(tmp_path)
    monitor = "{_target_:lightning.pytorch.callbacks.LearningRateMonitor,logging_interval:epoch}"
    overrides = ["hydra/launcher=population", "seed=0,1", f"+trainer.callbacks=[{RECORDER},{monitor}]"]
    with sweep(tmp_path / "sweep", *overrides, "trainer.logger=true"):
        results = {p.parent.name: json.loads(p.read_text()) for p in (tmp_path / "sweep").rglob("result.json")}
        (events,) = (tmp_path / "sweep" / "lightning_logs").iterdir()  # the population's own: no shared version_N
        assert re.fullmatch(r"[0-9a-f]{20}", events.name)  # named by its members (sherlocked.records.layout)
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        assert [tag for tag in accumulator.Tags()["scalars"] if tag.startswith("lr-SGD")]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["recorded.jsonl", "sweep"]
    assert [result["status"] for result in results.values()] == ["ok", "ok"]
    assert not any("callbacks" in name for name in results)  # not in the job dirs' names
    start, *epochs = hooks(recorded)
    assert start["members"] == 2 and [e["epoch"] for e in epochs] == [0, 1]  # one population: the hooks once
    assert {"Recorder", "LearningRateMonitor", "PopulationCheckpoint", "Reporter"} <= set(start["callbacks"])


EARLY_STOPPING = "+trainer.callbacks=[{_target_:lightning.pytorch.callbacks.EarlyStopping,monitor:test_acc}]"


@pytest.mark.parametrize("mode", [[], POPULATION], ids=["run", "sweep"])
def test_early_stopping_is_refused_in_one_line(mode, tmp_path, monkeypatch, capsys):
    code, err = command_line([*mode, *(["seed=0,1"] if mode else []), EARLY_STOPPING], tmp_path, monkeypatch, capsys)
    line = assert_refused(code, err, tmp_path, "trainer.callbacks", "lightning.pytorch.callbacks.EarlyStopping")
    assert "cannot work on a population" in line and "stop every member on one metric" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    ("callbacks", "why"),
    [
        ("[{_target_:pytorch_lightning.callbacks.early_stopping.EarlyStopping}]", "stop every member on one metric"),
        ("[{_target_:lightning.pytorch.callbacks.ModelCheckpoint,monitor:test_acc}]", "checkpoints each population"),
        ("{tune:{_target_:lightning.pytorch.callbacks.BatchSizeFinder}}", "shared dataset.batch_size"),
        ("[{_target_:lightning.pytorch.callbacks.LearningRateFinder}]", "sweep model.optimizer.lr instead"),
        ("[{_target_:lightning.pytorch.callbacks.LearningRateMonitor}]", "give it one, trainer.logger=true"),
        ("[lightning.pytorch.callbacks.LearningRateMonitor]", "must be a list of callbacks with a _target_"),
        ("5", "must be a list of callbacks with a _target_"),
    ],
)
def test_a_callback_that_cannot_work_is_named_with_why(make_cfg, callbacks, why):
    with pytest.raises(ConfigError, match="^trainer.callbacks") as refused:
        validate(make_cfg(f"+trainer.callbacks={callbacks}"))
    assert why in str(refused.value) and "\n" not in str(refused.value)


def test_callbacks_that_can_work_pass_the_checks(make_cfg):
    for callbacks in (
        f"[{RECORDER}]",
        "[{_target_:my_callbacks.EarlyStopping}]",  # a user's own class of that name: the user's to judge
        "[{_target_:lightning.pytorch.callbacks.LearningRateMonitor}]",  # with a logger (below)
        "null",
        "[]",
    ):
        validate(make_cfg(f"+trainer.callbacks={callbacks}", "trainer.logger=true"))
