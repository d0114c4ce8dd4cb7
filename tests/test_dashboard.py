"""TensorBoard's HParams tab over a sweep: one experiment with every swept value, read back from the event
files and through the HParams plugin's own HTTP API."""

import json
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from sherlocked.records.layout import HPARAMS as EXPERIMENT
from sherlocked.records.layout import MEAN


def hparams_data(folder) -> list[HParamsPluginData]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [HParamsPluginData.FromString(c) for c in events.PluginTagToContent("hparams").values()]


def tensorboard_experiment(logdir, seconds: float = 60) -> dict:
    """The HParams plugin's answer for `logdir`, from a TensorBoard started on 127.0.0.1 (an unused port)."""
    return served([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)], seconds)[0]


def served(command: list[str], seconds: float = 60) -> tuple[dict, list[str]]:
    """A TensorBoard started by `command` (on 127.0.0.1, an unused port): its HParams experiment and its runs."""
    command = [*command, "--host", "127.0.0.1", "--port", "0", "--load_fast", "false", "--reload_interval", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        while port is None:
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", server.stderr.readline())
            port = found and found[1]
            assert server.poll() is None, "TensorBoard stopped"
        deadline = time.monotonic() + seconds
        while True:  # TensorBoard reads the event files in the background
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/data/plugin/hparams/experiment",
                data=json.dumps({"experimentName": ""}).encode(),
                headers={"Content-Type": "application/json", "X-TensorBoard-Feature-Flags": "{}"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                experiment = json.loads(response.read())
            if experiment.get("hparamInfos") or time.monotonic() > deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=10) as response:
                    return experiment, json.loads(response.read())
            time.sleep(0.5)
    finally:  # SIGTERM: the board removes its summary's temporary folder on the way out
        server.terminate()
        server.wait()


@pytest.mark.slow
def test_a_sweep_has_one_hparams_experiment_with_its_swept_values_first(sweep, tmp_path):
    grid = ["act1=relu,tanh", "act3=sigmoid,relu", "seed=0,1", "hydra/launcher=population"]
    with sweep(tmp_path / "sweep", *grid):  # its directory goes when the block ends
        check_experiment(tmp_path)


def check_experiment(tmp_path):
    assert len(list((tmp_path / "sweep").rglob("result.json"))) == 8
    runs = sorted(p.name for p in (tmp_path / "sweep" / "tensorboard").iterdir() if p.name != MEAN)
    assert runs[:2] == ["act1=relu,act3=relu,seed=0", "act1=relu,act3=relu,seed=1"]  # named by what varies
    for run in runs:  # a run holds its session, and no experiment of its own
        kinds = {d.WhichOneof("data") for d in hparams_data(tmp_path / "sweep" / "tensorboard" / run)}
        assert kinds == {"session_start_info", "session_end_info"}
    (summary,) = [d.experiment for d in hparams_data(tmp_path / "sweep" / EXPERIMENT)]
    names = [info.name for info in summary.hparam_infos]
    assert names[:3] == ["act1", "act3", "seed"] and all(info.differs for info in summary.hparam_infos[:3])
    assert not any(info.differs for info in summary.hparam_infos[3:]) and "act2" in names[3:]
    domains = {info.name: list(info.domain_discrete) for info in summary.hparam_infos}
    assert domains["act1"] == ["relu", "tanh"] and domains["act3"] == ["relu", "sigmoid"]
    assert domains["seed"] == ["0", "1"] and "act4" not in domains  # values to tick; no column past the depth
    assert domains["study"] == ["default"]
    assert summary.metric_infos[0].name.tag == "accuracy/test"  # the curve's last value

    served = tensorboard_experiment(tmp_path / "sweep")
    columns = [(info["name"], info.get("differs", False)) for info in served["hparamInfos"]]
    assert columns[:4] == [("act1", True), ("act3", True), ("seed", True), ("act2", False)], columns
    act1 = next(info for info in served["hparamInfos"] if info["name"] == "act1")
    assert act1["type"] == "DATA_TYPE_STRING" and act1["domainDiscrete"] == ["relu", "tanh"]
    tags = ["accuracy/test", "loss/test", "loss/train_epoch", "accuracy/test_std"]  # the last: mean runs'
    assert [m["name"]["tag"] for m in served["metricInfos"]] == tags
    assert served["metricInfos"][0]["displayName"] == "final test accuracy"


def test_a_runs_hparams_yaml_is_what_lightning_writes(tmp_path):
    """sherlocked writes it (libyaml, quicker); Lightning leaves a file that exists alone, so it must be the same."""
    from lightning.pytorch.core.saving import save_hparams_to_yaml
    from lightning.pytorch.loggers import TensorBoardLogger

    from sherlocked.training.trackers.tensorboard_runs import log_session

    shown = {"act1": "relu", "act4": "none", "seed": 3, "batch_norm": "[1, 3]", "lr": 0.01, "output_activation": True}
    shown |= {"widths": "784-500-256-10", "null_like": "null", "number_like": "1e-3", "yes": "true"}
    logger = TensorBoardLogger(str(tmp_path), name="run", version="")
    log_session(logger, shown)
    logger.finalize("success")
    save_hparams_to_yaml(tmp_path / "lightning.yaml", dict(shown))
    assert (tmp_path / "run" / "hparams.yaml").read_text() == (tmp_path / "lightning.yaml").read_text()


def scalars(folder, tag: str) -> tuple[list[int], list[float]]:
    """The steps and values of a scalar tag in a run."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return [event.step for event in events.Scalars(tag)], [event.value for event in events.Scalars(tag)]


@pytest.mark.slow
def test_each_configuration_gets_a_run_of_the_mean_and_std_over_its_seeds(sweep, tmp_path):
    grid = ["act3=relu,tanh", "seed=0,1,2", "hydra/launcher=population", "logger=off"]  # no run per job
    with sweep(tmp_path / "sweep", *grid):
        runs = tmp_path / "sweep" / "tensorboard"
        assert sorted(p.name for p in runs.iterdir()) == [MEAN] and not list(runs.rglob(".job"))
        assert sorted(p.name for p in (runs / MEAN).iterdir()) == ["act3=relu", "act3=tanh"]
        for act in ("relu", "tanh"):
            found = [json.loads(p.read_text()) for p in (tmp_path / "sweep").glob(f"act3={act},*/result.json")]
            curves = np.array([r["history"]["test_acc"] for r in found])  # 3 seeds x 2 epochs
            mean = runs / MEAN / f"act3={act}"
            for tag, expected in (("accuracy/test", curves.mean(0)), ("accuracy/test_std", curves.std(0))):
                steps, values = scalars(mean, tag)
                assert steps == [1, 2] and values == pytest.approx(expected.tolist(), abs=1e-6)
            (start,) = [d.session_start_info for d in hparams_data(mean) if d.HasField("session_start_info")]
            assert start.hparams["act3"].string_value == act and "seed" not in start.hparams
            assert start.hparams["runs"].string_value == "3"
            assert not [tag for tag in EventAccumulator(str(mean)).Reload().Tags()["scalars"] if tag.startswith("hp/")]
        with sweep(tmp_path / "sweep", *grid[:-1]) as again:  # per-job runs back on: still the same jobs
            assert all(r.return_value.skipped for r in again.returns[0])


@pytest.mark.slow
def test_tensorboard_over_several_sweeps_filters_each_by_all_its_values_and_names_runs_by_study(sweep, tmp_path):
    outputs = tmp_path / "outputs"
    with (
        sweep(outputs / "sweeps" / "a", "study=a", "act3=relu,tanh", "seed=0", "hydra/launcher=population"),
        sweep(outputs / "sweeps" / "b", "study=b", "act3=relu", "seed=1,2", "hydra/launcher=population"),
    ):
        before = sorted(outputs.rglob("*"))
        experiment, runs = served([sys.executable, "-m", "sherlocked.board", str(outputs)])
        assert sorted(outputs.rglob("*")) == before  # the summary is written elsewhere
    domains = {info["name"]: info.get("domainDiscrete") for info in experiment["hparamInfos"]}
    assert domains["study"] == ["a", "b"] and domains["seed"] == ["0", "1", "2"] and domains["act3"] == ["relu", "tanh"]
    assert "act4" not in domains
    assert {"a/act3=relu", "b/seed=1", "b/mean/all"} <= set(runs), runs  # the study, then what varies
    # One run holds the one experiment summary (TensorBoard lists it, with no curves); no sweep's own is seen.
    assert [run for run in runs if "sweeps/" in run or "hparams" in run] == ["hparams/."], runs


@pytest.mark.slow
def test_the_experiment_keeps_none_where_it_is_a_value_and_drops_it_past_a_models_depth(tmp_path):
    from sherlocked.bench.scale import synthetic_sweep
    from sherlocked.records.dashboard import write_experiment_of

    synthetic_sweep(tmp_path / "sweep", 2700)  # batch_norm none, then all (3-layer models: act4 is "none")
    write_experiment_of([tmp_path / "sweep"], tmp_path / "experiment")
    (summary,) = [d.experiment for d in hparams_data(tmp_path / "experiment")]
    domains = {info.name: list(info.domain_discrete) for info in summary.hparam_infos}
    assert domains["batch_norm"] == ["all", "last", "none"] and "act4" not in domains


def test_a_sweep_with_one_finished_job_gets_its_mean_run_and_hparams(tmp_path):
    """One job ok, one failed: the mean run of the one, named by what the sweep varied, and the sweep's HParams
    experiment (the mean runs' TypeError had stopped the sweep's end before it)."""
    from sherlocked.records import table
    from sherlocked.records.dashboard import write_experiment, write_means
    from sherlocked.records.results import Result
    from sherlocked.spec.config import hparams

    def result(act2: str, status: str) -> Result:
        config = {"act1": "relu", "act2": act2, "act3": "relu", "seed": 0}
        found = Result(status=status, config=config, hparams=hparams(config), overrides=[f"act2={act2}", "seed=0"])
        if status == "ok":
            found.final_test_acc = 0.5
            found.history = {"test_acc": [0.4, 0.5], "test_loss": [1.0, 0.9], "train_loss": [1.1, 0.8]}
        return found

    jobs = {"act2=sigmoid,seed=0": result("sigmoid", "ok"), "act2=tanh,seed=0": result("tanh", "failed")}
    for job, found in jobs.items():  # as a population leaves them: the result.json files, then the table's rows
        (tmp_path / job).mkdir()
        found.write(tmp_path / job)
    table.append(tmp_path, list(jobs), list(jobs.values()))
    assert write_means(tmp_path) == 1 and write_experiment(tmp_path) == 1
    mean = tmp_path / "tensorboard" / MEAN / "act2=sigmoid"  # the sweep varied act2: its failed value too
    steps, values = scalars(mean, "accuracy/test")
    assert steps == [1, 2] and values == pytest.approx([0.4, 0.5])
    (start,) = [d.session_start_info for d in hparams_data(mean) if d.HasField("session_start_info")]
    assert start.hparams["act2"].string_value == "sigmoid" and start.hparams["runs"].string_value == "1"
    (summary,) = [d.experiment for d in hparams_data(tmp_path / EXPERIMENT)]
    assert {info.name: list(info.domain_discrete) for info in summary.hparam_infos}["act2"] == ["sigmoid"]
