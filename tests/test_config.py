"""The one declaration of config keys, what derives from it, and the config groups as composed."""

import dataclasses

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from sherlocked.spec import config
from sherlocked.spec.checks import member_spec
from sherlocked.spec.config import identity, identity_key
from sherlocked.training.engine import run
from sherlocked.training.optimizers import MEMBER_SETTINGS


def test_member_keys_are_what_a_population_may_differ_in():
    for override in ("act1=relu", "+act5=tanh", "seed=3", "model.batch_norm=all", "model.optimizer.lr=0.1"):
        assert config.is_member_key(override), override
    for override in ("model/optimizer=adam", "dataset=mnist_5k", "model.widths=[784,10]", "activation=relu"):
        assert not config.is_member_key(override), override


@pytest.mark.slow
def test_every_member_key_changes_the_members_model_and_no_other_key_does(make_cfg):
    """The declaration and the engine agree: a member key is one MemberSpec or the member-wise optimiser
    (sherlocked.optimizers) may differ in."""
    equal = "model.widths=[784,8,8,10]"  # a hidden layer that keeps its width: a skip fits around it
    base = member_spec(make_cfg(equal))
    changed = {
        "seed": "seed=5",
        "model.batch_norm": "model.batch_norm=all",
        "model.init": "model.init=xavier",
        "model.output_activation": "model.output_activation=false",
        "model.residual": "model.residual=true",
        "act2": "act2=tanh",
    }
    optimizer = {f"model.optimizer.{name}" for name in MEMBER_SETTINGS}
    members = {key.path for key in config.KEYS if key.member} - {"act{n}"} | {"act2"}
    assert members == set(changed) | optimizer and config.key_of("act2").member
    for override in changed.values():
        assert member_spec(make_cfg(equal, override)) != base, override
    shared = ("model.optimizer.lr=0.5", "model.optimizer.momentum=0.9", "dataset.batch_size=8")
    shared = member_spec(make_cfg(equal, *shared))
    assert dataclasses.asdict(shared) == dataclasses.asdict(base)


def test_job_dir_names_and_identity_derive_from_the_declaration(make_cfg):
    with initialize_config_dir(config_dir=str(config.CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", return_hydra_config=True, overrides=["study=x", "act2=tanh", "trainer=cpu"])
    excluded = list(cfg.hydra.job.config.override_dirname.exclude_keys)
    assert excluded == config.NOT_IN_DIR_NAME and {"study", "dataset.root", "trainer"} <= set(excluded)
    assert cfg.hydra.job.override_dirname == "act2=tanh"

    a = OmegaConf.to_container(make_cfg("study=a", "dataset.root=/x"), resolve=True)
    b = OmegaConf.to_container(make_cfg("study=b", "dataset.root=/y"), resolve=True)
    c = OmegaConf.to_container(make_cfg("study=b", "model.init=xavier"), resolve=True)
    assert identity(a) == identity(b) != identity(c)


def test_a_key_added_later_leaves_the_identity_of_jobs_trained_before_it_at_its_neutral_value(make_cfg):
    """model.residual came after jobs were trained without it: at false a job is the one it was (a rerun finds it
    finished, its population's checkpoint under the same key); at true it is another job."""
    now = OmegaConf.to_container(make_cfg(), resolve=True)
    before = {**now, "model": {k: v for k, v in now["model"].items() if k != "residual"}}
    skips = OmegaConf.to_container(make_cfg("model.residual=true", "model.widths=[784,8,8,10]"), resolve=True)
    no_skips = OmegaConf.to_container(make_cfg("model.widths=[784,8,8,10]"), resolve=True)
    assert now["model"]["residual"] is False and "residual" not in before["model"]
    assert identity(now) == identity(before) and identity_key(now) == identity_key(before)
    assert identity_key(skips) != identity_key(no_skips)


def test_hparams_name_every_layer_and_pad_shallow_models_to_act4():
    two = config.hparams({"act1": "relu", "act2": "tanh", "act3": None})
    assert (two["act1"], two["act2"], two["act3"], two["act4"]) == ("relu", "tanh", "none", "none")
    five = config.hparams({f"act{i}": "selu" for i in range(1, 6)})
    assert [five[f"act{i}"] for i in range(1, 6)] == ["selu"] * 5 and "act6" not in five


def test_a_five_layer_run_shows_act5_in_tensorboards_hparams(make_cfg, tmp_path):
    cfg = make_cfg("+act4=tanh", "+act5=sigmoid", "trainer.max_epochs=1", widths="[784,16,12,12,12,10]")
    (result,) = run([cfg], [tmp_path])
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    start = next(
        HParamsPluginData.FromString(content).session_start_info
        for content in events.PluginTagToContent("hparams").values()
        if HParamsPluginData.FromString(content).HasField("session_start_info")
    )
    assert start.hparams["act5"].string_value == "sigmoid" and start.hparams["act4"].string_value == "tanh"
    assert result.hparams["act5"] == "sigmoid"


@pytest.mark.parametrize(
    ("choice", "cls", "lr"),
    [("sgd", "SGD", 0.01), ("adam", "Adam", 0.001), ("adamw", "AdamW", 0.001)],
)
def test_the_optimizer_group_builds_each_optimizer_with_its_own_keys(make_cfg, choice, cls, lr):
    cfg = make_cfg(f"model/optimizer={choice}")
    optimizer = instantiate(cfg.model.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert type(optimizer).__name__ == cls and optimizer.defaults["lr"] == lr
    assert ("momentum" in cfg.model.optimizer) == (choice == "sgd")
    assert config.hparams(OmegaConf.to_container(cfg, resolve=True))["optimizer"] == choice


def test_adam_members_train_as_they_would_alone(make_cfg, tmp_path):
    """Adam's update is elementwise, so summing member losses keeps members independent, as with SGD."""
    cfgs = [make_cfg("model/optimizer=adamw", f"seed={s}", f"act2={a}") for s, a in ((0, "sigmoid"), (1, "tanh"))]
    together = run(cfgs, [tmp_path / "pop0", tmp_path / "pop1"])
    for i, cfg in enumerate(cfgs):
        (alone,) = run([cfg], [tmp_path / f"solo{i}"])
        for key in ("test_acc", "test_loss", "train_loss"):
            assert together[i].history[key] == pytest.approx(alone.history[key], abs=1e-5)


def test_the_defaults_say_what_happens(make_cfg):
    """The default run is the study's, diagnostics on, with no preset silently changing it."""
    cfg = make_cfg(small=False)
    assert cfg.diagnostics.enabled and "experiment" not in cfg
    assert not make_cfg("diagnostics=off", small=False).diagnostics.enabled
    assert not make_cfg("experiment=cifar10_4layer", "diagnostics=off", small=False).diagnostics.enabled
    assert make_cfg("experiment=cifar10_4layer", small=False).model.optimizer.momentum == 0.5


def test_undeclared_keys_keep_their_dotted_paths():
    cfg = {"seed": 1, "study": "x", "model": {"init": "default", "optimizer": {"nesterov": True}}, "dataset": {}}
    assert config.undeclared(cfg) == {"model.optimizer.nesterov": True}


def test_members_may_differ_in_member_keys_only():
    a = {"act1": "relu", "seed": 0, "model": {"widths": [784, 10], "optimizer": {"lr": 0.1}}, "study": "x"}
    b = {"act1": "tanh", "seed": 3, "model": {"widths": [784, 10], "optimizer": {"lr": 0.3}}, "study": "x"}
    assert config.disagreement([a, b]) is None
    wider = {**b, "model": {"widths": [784, 20, 10], "optimizer": {"lr": 0.3}}}
    assert config.disagreement([a, b, wider]) == (
        "members of one population must agree on everything but member keys: model.widths is [784, 10] in member 1 "
        "and [784, 20, 10] in member 3"
    )
    assert "study is 'x' in member 1 and '(unset)' in member 2" in config.disagreement([a, {**b, "study": "(unset)"}])
    assert "extra is '(unset)' in member 1 and 1 in member 2" in config.disagreement([a, {**b, "extra": 1}])
