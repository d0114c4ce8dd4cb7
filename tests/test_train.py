import json
import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from sherlocked.records.job import Job
from sherlocked.records.results import SCHEMA
from sherlocked.spec.checks import validate
from sherlocked.spec.config import ConfigError
from sherlocked.training.engine import run, train

ROOT = __import__("pathlib").Path(__file__).parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "mnist_5k", "cifar10"])
@pytest.mark.parametrize("trainer", ["default", "cpu", "gpu"])
def test_every_dataset_and_trainer_composes(make_cfg, dataset, trainer):
    cfg = make_cfg(f"dataset={dataset}", f"trainer={trainer}", small=False)
    assert cfg.dataset.name == dataset
    assert cfg.trainer.accelerator == {"default": "auto", "cpu": "cpu", "gpu": "gpu"}[trainer]
    events = cfg.logger.tensorboard
    assert events._target_.endswith("TensorBoardLogger") and events.default_hp_metric is False
    assert cfg.trainer.max_epochs == 10 and cfg.dataset.batch_size == 32  # the study's, whatever the dataset


def test_the_default_is_the_original_study(make_cfg):
    cfg = make_cfg(small=False)
    spec = validate(cfg)
    assert spec.widths == (784, 500, 256, 10) and spec.activations == ("relu", "relu", "relu")
    assert spec.output_activation and spec.batch_norm == () and spec.init == "default"
    assert (cfg.model.optimizer.lr, cfg.model.optimizer.momentum) == (0.01, 0.5)
    assert (cfg.dataset.name, cfg.dataset.batch_size, cfg.trainer.max_epochs) == ("mnist", 32, 10)
    assert (list(cfg.dataset.mean), list(cfg.dataset.std)) == ([0.1307], [0.3081])


def test_the_cifar_experiments_set_the_studys_cifar_setup(make_cfg):
    cfg = make_cfg("experiment=cifar10_4layer", "act4=tanh", small=False)
    spec = validate(cfg)
    assert spec.widths == (3072, 1000, 500, 256, 10) and spec.activations[-1] == "tanh"
    assert (cfg.dataset.name, cfg.dataset.batch_size, cfg.trainer.max_epochs) == ("cifar10", 4, 5)
    assert list(cfg.dataset.mean) == [0.5] * 3 and list(cfg.dataset.std) == [0.5] * 3
    two = validate(make_cfg("experiment=cifar10_2layer", small=False))
    assert two.widths == (3072, 500, 10) and len(two.activations) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("act2=swish", "act2: unknown activation 'swish'; choose from relu, tanh, sigmoid"),
        ("+act4=relu", "4 activations .* for 3 layers"),
        ("model.batch_norm=[1,7]", "names layer 7, but the model has layers 1..3"),
        ("model.batch_norm=first", "unknown model.batch_norm 'first'; choose from none, all, last"),
        ("model.init=orthogonal", "unknown model.init 'orthogonal'; choose from default, kaiming"),
        ("model.optimizer.lr=0", "model.optimizer.lr=0 must be a finite positive number"),
        ("model.optimizer.lr=-0.1", "model.optimizer.lr=-0.1 must be a finite positive number"),
        ("dataset.batch_size=0", "dataset.batch_size=0 must be a positive whole number"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 must be a positive whole number"),
        ("dataset=cifar10", "must start with cifar10's 3072 inputs"),
        ("seed=abc", "seed='abc' must be a whole number"),
        ("seed=1.5", "seed=1.5 must be a whole number"),  # int() would make it seed 1, a duplicate run
        ("trainer.max_epochs=1.5", "trainer.max_epochs=1.5 must be a positive whole number"),
        ("dataset.batch_size=100000", "dataset.batch_size=100000 is more than mnist's 60000 training images"),
        ("model.batch_norm=all dataset.batch_size=1", "leaves a batch of one image, which batch norm"),
        ("model.batch_norm=last dataset=mnist_5k dataset.batch_size=3", "leaves a batch"),  # 4000 = 3 * 1333 + 1
        ("model.widths=[784,abc,10]", r"model.widths=\[784, 'abc', 10\] must be whole numbers"),
        ("compile=fast", "compile='fast' must be false, true or one of torch.compile's modes: default, reduce-over"),
        ("model/optimizer=adam +model.optimizer.momentum=0.9", r"momentum=0.9: torch.optim.Adam has no momentum"),
        ("model/optimizer=adamw +model.optimizer.momentum=0.5", r"momentum=0.5: torch.optim.AdamW has no momentum"),
    ],
)
def test_each_bad_input_is_one_line_naming_the_value(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message) as info:
        validate(make_cfg(*override.split()))
    assert "\n" not in str(info.value)


def test_every_activation_and_batch_norm_placement_trains(make_cfg, tmp_path):
    cfgs = [
        make_cfg(f"act1={a}", f"act2={b}", f"act3={c}", f"model.batch_norm={bn}", "trainer.max_epochs=1")
        for a, b, c, bn in [
            ("relu", "tanh", "sigmoid", "none"),
            ("selu", "gelu", "silu", "all"),
            ("elu", "leaky_relu", "softplus", "last"),
            ("mish", "identity", "relu|tanh", "[1,3]"),
        ]
    ]
    results = run(cfgs, [tmp_path / str(i) for i in range(4)])
    assert [r.hparams["batch_norm"] for r in results] == ["none", "all", "last", "[1, 3]"]
    assert all(0 <= r.final_test_acc <= 1 and not r.diverged for r in results)


def read_events(job_dir):
    events = EventAccumulator(str(job_dir / "tensorboard"))
    events.Reload()
    return events


def test_a_run_leaves_its_result_and_tensorboard_events_with_hparams(make_cfg, tmp_path):
    cfg = make_cfg("act2=sigmoid", "seed=3")
    (result,) = run([cfg], [tmp_path], [["act2=sigmoid", "seed=3"]])
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved == json.loads(json.dumps(result.to_json()))
    assert saved["status"] == "ok" and saved["schema"] == SCHEMA and "skipped" not in saved
    assert saved["history"]["epoch"] == [1, 2] and len(saved["history"]["train_loss"]) == 2
    assert saved["final_test_acc"] == saved["history"]["test_acc"][-1]
    assert saved["overrides"] == ["act2=sigmoid", "seed=3"] and saved["config"]["act2"] == "sigmoid"
    assert {"torch", "lightning", "python"} <= set(saved["versions"])
    assert not list(tmp_path.glob("*.tmp"))

    events = read_events(tmp_path)
    scalars = events.Tags()["scalars"]
    assert {"accuracy/test", "loss/test", "loss/train", "loss/train_epoch"} <= set(scalars)
    assert not [tag for tag in scalars if tag.startswith("hp/")]  # HParams reads the curves' last values
    assert [e.step for e in events.Scalars("accuracy/test")] == [1, 2]
    assert events.Scalars("accuracy/test")[-1].value == pytest.approx(saved["final_test_acc"])
    start = next(
        HParamsPluginData.FromString(content).session_start_info
        for content in events.PluginTagToContent("hparams").values()
        if HParamsPluginData.FromString(content).HasField("session_start_info")
    )
    hp = {key: value.string_value or value.number_value for key, value in start.hparams.items()}
    assert hp["act2"] == "sigmoid" and hp["seed"] == "3" and hp["dataset"] == "mnist" and hp["study"] == "default"
    assert set(hp) == set(saved["hparams"]) - {"act4"}  # act4 is "none" past this model's depth: no column


def test_step_metrics_are_written_per_member_at_epoch_ends_with_their_own_steps(make_cfg, tmp_path):
    """Per-step values wait on the device and go to TensorBoard once an epoch, under the step they belong to."""
    cfgs = [make_cfg("trainer.log_every_n_steps=5", f"seed={s}", "diagnostics=off") for s in (0, 1)]
    results = run(cfgs, [tmp_path / "a", tmp_path / "b"])  # 16 steps an epoch, 2 epochs
    losses = [read_events(tmp_path / name).Scalars("loss/train") for name in ("a", "b")]
    assert [e.step for e in losses[0]] == [e.step for e in losses[1]] == [0, 5, 10, 15, 20, 25, 30]
    assert [e.value for e in losses[0]] != [e.value for e in losses[1]]  # each member its own values
    epoch_losses = [e.value for e in read_events(tmp_path / "a").Scalars("loss/train_epoch")]
    assert epoch_losses == pytest.approx(results[0].history["train_loss"])


def test_a_run_that_diverges_is_recorded_diverged_not_failed_with_diagnostics_on(make_cfg, tmp_path):
    (result,) = run([make_cfg("model.optimizer.lr=1e30", "diagnostics=on", "diagnostics.interval=4")], [tmp_path])
    assert result.status == "diverged" and result.error is None
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "diverged"


def test_a_seed_fully_determines_a_run_and_different_seeds_differ(make_cfg, tmp_path):
    a, b, c = (run([make_cfg(f"seed={s}")], [tmp_path / str(i)])[0] for i, s in enumerate((1, 1, 2)))
    assert a.history == b.history
    assert a.history["train_loss"] != c.history["train_loss"]


@pytest.mark.slow
def test_population_members_match_their_solo_runs(make_cfg, tmp_path):
    cfgs = [
        make_cfg("act1=sigmoid", "act2=sigmoid", "act3=relu", "seed=0"),
        make_cfg("act1=tanh", "act2=relu|tanh", "act3=selu", "model.batch_norm=all", "seed=1"),
        make_cfg("model.batch_norm=last", "model.init=kaiming", "seed=2"),
        make_cfg("act2=sigmoid", "model.output_activation=false", "seed=0"),
    ]
    together = run(cfgs, [tmp_path / f"pop{i}" for i in range(4)])
    for i, cfg in enumerate(cfgs):
        (alone,) = run([cfg], [tmp_path / f"solo{i}"])
        for key in ("test_acc", "test_loss", "train_loss"):
            assert together[i].history[key] == pytest.approx(alone.history[key], abs=1e-5)


def test_a_population_whose_members_differ_beyond_member_keys_fails_each_member_with_one_line(make_cfg, tmp_path):
    """The engine trains the first member's data, widths and epochs for all: it refuses members that differ there."""
    jobs = [
        Job.of(make_cfg("seed=0"), tmp_path / "a"),
        Job.of(make_cfg("seed=1", "trainer.max_epochs=3"), tmp_path / "b"),
    ]
    results = train(jobs)
    assert [r.status for r in results] == ["failed", "failed"]
    assert results[0].error == (
        "ConfigError: members of one population must agree on everything but member keys: trainer.max_epochs is 2 "
        "in member 1 and 3 in member 2"
    )
    assert all(json.loads((job.job_dir / "result.json").read_text())["status"] == "failed" for job in jobs)
    assert [
        r.status for r in train([Job.of(make_cfg(f"seed={s}", "act2=tanh"), tmp_path / f"ok{s}") for s in (0, 1)])
    ] == [
        "ok",
        "ok",
    ]


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "sherlocked.train", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_the_command_line_trains_and_says_where_the_results_are(data_root, tmp_path):
    out = cli(
        f"dataset.root={data_root}",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "model.widths=[784,16,12,10]",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "final test accuracy:" in out.stdout and str(tmp_path / "run" / "result.json") in out.stdout
    assert json.loads((tmp_path / "run" / "result.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_help_says_what_sherlocked_is_its_groups_activations_and_examples(tmp_path):
    out = cli("--help", cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.startswith("sherlocked: how activation functions interact")
    assert "dataset: cifar10, fashion_mnist, mnist, mnist_5k" in out.stdout
    assert "model/optimizer: adam, adamw, sgd" in out.stdout and "act1: relu" in out.stdout
    assert "relu, tanh, sigmoid, selu, gelu, silu, elu, leaky_relu, softplus, mish, identity" in out.stdout
    examples = [line.strip() for line in out.stdout.splitlines() if line.startswith("  python -m sherlocked.")]
    assert len(examples) == 5 and any(" -m hydra/launcher=population " in e for e in examples)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["-m"]])
def test_a_bad_command_line_stops_with_one_line_and_writes_nothing(tmp_path, mode):
    out = cli(
        *mode, "act2=relu,swish" if mode else "act2=swish", "hydra.run.dir=run", "hydra.sweep.dir=sweep", cwd=tmp_path
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "sherlocked: act2: unknown activation 'swish'; choose from relu, tanh, sigmoid, selu, gelu, silu, elu, "
        "leaky_relu, softplus, mish, identity"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["seed=0,abc"], "sherlocked: seed='abc' must be a whole number"),
        (["seed=1.5"], "sherlocked: seed=1.5 must be a whole number"),
        (["hydra/launcher=population", "hydra.launcher.max_members=-3"], "sherlocked: hydra.launcher.max_members=-3"),
        (  # a check that fails unforeseen still stops the sweep (Hydra would make it a warning, and the sweep rc 0)
            ["hydra/launcher=population", "~dataset.download", "model.optimizer._target_=torch.optim.SGD,nope.Nope"],
            "sherlocked: invalid configuration: ConfigKeyError: Key 'download' is not in struct",
        ),
        (  # a population of Adam members would train as if the momentum were not there
            ["hydra/launcher=population", "model/optimizer=adam", "+model.optimizer.momentum=0.9,0.5"],
            "sherlocked: model.optimizer.momentum=0.9: torch.optim.Adam has no momentum",
        ),
    ],
)
def test_a_sweep_with_a_value_of_the_wrong_type_stops_before_anything_is_written(tmp_path, values, message):
    """Hydra turns a callback's exception into a warning: every error must become one line and exit code 2."""
    out = cli("-m", *values, "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["-m", "seed=0,1"]])
def test_data_that_is_not_there_stops_before_anything_is_written(tmp_path, mode):
    out = cli(
        *mode,
        "dataset.root=nowhere",
        "dataset.download=false",
        "hydra.run.dir=run",
        "hydra.sweep.dir=sweep",
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("sherlocked: mnist is not in nowhere") and "dataset=mnist_5k" in line
    assert list(tmp_path.iterdir()) == []


def test_configs_resolve_without_hydra_running(make_cfg):
    assert OmegaConf.to_container(make_cfg(), resolve=True)["dataset"]["root"]


@pytest.mark.slow
def test_over_longer_training_on_real_digits_members_stay_within_half_a_point_of_solo(make_cfg, tmp_path):
    """fp32 summation order differs between a batched and a single matmul; through ReLU boundaries the
    difference can grow over hundreds of steps, so this compares final accuracy with a tolerance."""
    study = ["dataset=mnist_5k", "dataset.batch_size=32", "trainer.max_epochs=2"]
    cfgs = [  # each member with its own optimiser settings too
        make_cfg(*study, "act2=sigmoid", "seed=0", "model.optimizer.lr=0.05", widths="[784,500,256,10]"),
        make_cfg(*study, "act3=tanh", "model.batch_norm=all", "seed=1", widths="[784,500,256,10]"),
        make_cfg(*study, "act1=selu", "act2=tanh", "seed=2", "model.optimizer.momentum=0.9", widths="[784,500,256,10]"),
        make_cfg(
            *study,
            "act1=sigmoid",
            "act3=tanh",
            "seed=3",
            "model.optimizer.weight_decay=1e-3",
            widths="[784,500,256,10]",
        ),
    ]
    together = run(cfgs, [tmp_path / f"pop{i}" for i in range(4)])
    for i, cfg in enumerate(cfgs):
        (alone,) = run([cfg], [tmp_path / f"solo{i}"])
        assert abs(together[i].final_test_acc - alone.final_test_acc) <= 0.005


def test_diagnostics_go_to_result_json_per_epoch_and_to_tensorboard(make_cfg, tmp_path):
    (result,) = run([make_cfg("diagnostics=on", "diagnostics.interval=5", "diagnostics.histograms=true")], [tmp_path])
    diagnostics = result.diagnostics
    assert len(diagnostics["layer1/pre_mean"]) == 2 and len(diagnostics["layer3/dead"]) == 2
    assert all(v >= 0 for v in diagnostics["layer1/grad_w"])
    events = read_events(tmp_path)
    tags = events.Tags()
    expected = {"mechanism/layer1/pre_std", "mechanism/layer3/dead", "mechanism/output/samples_all_nonpos"}
    assert expected <= set(tags["scalars"])
    # TensorBoard groups cards by the tag's first part, in lexicographic order: accuracy and loss before the rest
    groups = sorted({tag.split("/")[0] for tag in tags["scalars"] + tags["histograms"]})
    assert groups == ["accuracy", "loss", "mechanism"]
    assert len(events.Scalars("mechanism/layer1/grad_w")) >= 32 // 5
    assert {"mechanism/layer1/pre_activation", "mechanism/layer3/activation"} <= set(tags["histograms"])
    (quiet,) = run([make_cfg("diagnostics=off")], [tmp_path / "off"])
    assert quiet.diagnostics == {} and quiet.history == result.history  # measuring changes nothing
    (default,) = run([make_cfg("diagnostics=on")], [tmp_path / "on"])  # histograms (a card a run) only if asked
    assert default.diagnostics and read_events(tmp_path / "on").Tags()["histograms"] == []


def test_a_failure_never_replaces_a_finished_result(make_cfg, tmp_path):
    """As when a second sweep into the same directory fails on a job the first one finished."""
    (done,) = run([make_cfg("seed=1")], [tmp_path])
    broken = Job.of(make_cfg("seed=1", "model.optimizer._target_=nope.Nope"), tmp_path)
    (failed,) = train([broken])
    assert failed.status == "failed" and "nope.Nope" in failed.error
    assert json.loads((tmp_path / "result.json").read_text())["final_test_acc"] == done.final_test_acc


def test_concurrent_writers_of_one_result_never_share_a_temporary_file(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from sherlocked.runtime.atomic import write_json

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: write_json(tmp_path / "result.json", {"writer": i, "pad": [i] * 5000}), range(40)))
    assert json.loads((tmp_path / "result.json").read_text())["writer"] in range(40)
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left behind
