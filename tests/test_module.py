from dataclasses import replace

import lightning as L
import pytest
import torch
from torch.optim import SGD

from sherlocked.records.job import Job
from sherlocked.spec.checks import MemberSpec
from sherlocked.training.data import StudyDataModule
from sherlocked.training.module import MemberMean, PopulationModule
from sherlocked.training.trackers.tensorboard_runs import TensorBoardRuns

SPEC = MemberSpec((784, 16, 10), ("relu", "relu"))


def tensorboard(folder, n: int) -> dict:
    """n members' TensorBoard runs, <folder>/<k>/tb/, as the engine opens them (sherlocked.training.trackers)."""
    settings = {"_target_": "lightning.pytorch.loggers.TensorBoardLogger", "name": "tb", "version": ""}
    return {"tensorboard": TensorBoardRuns(settings, [Job({}, folder / str(k)) for k in range(n)], None)}


def fit(
    members, data_root, poison=None, trackers=None, diagnostics=None, optimizer=None, compile_mode=None, callbacks=()
):
    data = StudyDataModule("mnist", str(data_root), (0.1307,), (0.3081,), 16, seeds=[m.seed for m in members])
    optimizer = optimizer or (lambda params: SGD(params, lr=0.05, momentum=0.5))
    module = PopulationModule(members, optimizer, trackers, diagnostics, compile_mode)
    if poison is not None:
        with torch.no_grad():
            module.net.layers[0].weight[poison] = float("nan")
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=list(callbacks),
    )
    trainer.fit(module, datamodule=data)
    return module


def test_member_mean_keeps_one_mean_per_member_over_batches():
    metric = MemberMean(2)
    metric.update(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    metric.update(torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]))
    assert metric.compute().tolist() == pytest.approx([5 / 6, 2 / 6])


def test_a_diverging_member_is_marked_and_leaves_the_others_exactly_as_alone(data_root):
    members = [SPEC.__class__(**{**SPEC.__dict__, "seed": s}) for s in (0, 1)]
    poisoned = fit(members, data_root, poison=0)
    alone = fit(members[1:], data_root)
    assert poisoned.alive.tolist() == [False, True]
    assert poisoned.member_history(0)["train_loss"][-1] != poisoned.member_history(0)["train_loss"][-1]  # NaN
    for mixed, solo in zip(poisoned.net.layers, alone.net.layers):
        torch.testing.assert_close(mixed.weight[1], solo.weight[0], rtol=0, atol=1e-6)
    assert poisoned.member_history(1) == alone.member_history(0)


def test_a_diverging_member_with_diagnostics_on_touches_no_other_members_diagnostics(data_root, tmp_path):
    """NaN weights must not break the histograms or the measures of the population (the study's default)."""
    members = [SPEC.__class__(**{**SPEC.__dict__, "seed": s}) for s in (0, 1)]
    diagnostics = {"interval": 4, "probe_size": 32, "histograms": True}
    poisoned = fit(members, data_root, poison=0, trackers=tensorboard(tmp_path / "mixed", 2), diagnostics=diagnostics)
    alone = fit(members[1:], data_root, trackers=tensorboard(tmp_path / "alone", 1), diagnostics=diagnostics)
    assert poisoned.alive.tolist() == [False, True]
    mixed, solo = poisoned.member_diagnostics(1), alone.member_diagnostics(0)
    assert set(mixed) == set(solo) and len(mixed["layer1/dead"]) == 2
    for name, values in solo.items():
        assert mixed[name] == pytest.approx(values, rel=1e-5, abs=1e-6, nan_ok=True), name
    assert poisoned.member_history(1) == alone.member_history(0)
    assert (tmp_path / "mixed" / "0" / "tb").exists()  # the diverged member's run is written too


@pytest.mark.slow
def test_after_tens_of_steps_each_member_of_a_population_equals_its_solo_run(data_root):
    members = [
        MemberSpec((784, 32, 16, 10), ("sigmoid", "sigmoid", "relu"), seed=0),
        MemberSpec((784, 32, 16, 10), ("relu|tanh", "tanh", "selu"), batch_norm=(1, 2, 3), seed=1),
        MemberSpec((784, 32, 16, 10), ("relu", "relu", "relu"), batch_norm=(3,), init="kaiming", seed=2),
        MemberSpec((784, 32, 16, 10), ("tanh", "sigmoid", "relu"), output_activation=False, seed=0),
    ]
    together = fit(members, data_root)  # 2 epochs of 16 steps
    x = torch.randn(50, 784)
    together.net.eval()
    for k, member in enumerate(members):
        alone = fit([member], data_root)
        alone.net.eval()
        mine, solo = together.net.export(k).state_dict(), alone.net.export(0).state_dict()
        assert mine.keys() == solo.keys()
        for name in mine:  # weights, biases, BN parameters and running statistics
            torch.testing.assert_close(mine[name], solo[name], rtol=0, atol=1e-5)
        assert torch.equal(together.net(x)[k].argmax(-1), alone.net(x)[0].argmax(-1))


NO_OUTPUT_ACT = MemberSpec((784, 32, 16, 10), ("tanh", "selu", "relu"), output_activation=False, seed=3)
MIXED = [
    MemberSpec((784, 32, 16, 10), ("sigmoid", "sigmoid", "relu"), seed=0),
    MemberSpec((784, 32, 16, 10), ("relu|tanh", "tanh", "selu"), batch_norm=(1, 3), seed=1),
    MemberSpec((784, 32, 16, 10), ("relu", "relu", "relu"), batch_norm=(3,), seed=2),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "target, settings",
    [
        ("torch.optim.SGD", [{"lr": 0.1, "momentum": 0.5, "weight_decay": 0.0},
                             {"lr": 0.03, "momentum": 0.9, "weight_decay": 1e-3},
                             {"lr": 0.01, "momentum": 0.0, "weight_decay": 1e-2}]),
        ("torch.optim.Adam", [{"lr": 1e-3, "weight_decay": 0.0}, {"lr": 3e-3, "weight_decay": 1e-3},
                              {"lr": 1e-4, "weight_decay": 0.0}]),
        ("torch.optim.AdamW", [{"lr": 1e-3, "weight_decay": 0.01}, {"lr": 3e-3, "weight_decay": 0.1},
                               {"lr": 1e-4, "weight_decay": 0.0}]),
    ],
)  # fmt: skip
def test_members_with_their_own_lr_momentum_and_weight_decay_each_equal_their_solo_run(data_root, target, settings):
    """Each member against torch.optim's own optimiser run on it alone, batch-norm members included."""
    from sherlocked.training.optimizers import MemberAdam, MemberSGD, population_optimizer

    configs = [{"_target_": target, "_partial_": True, **one} for one in settings]
    # With Adam, members without batch norm: a Linear's bias right before batch norm has a gradient of
    # rounding noise only (BN removes it), which Adam scales up to full steps, alone as in a population.
    members = MIXED if target == "torch.optim.SGD" else [MIXED[0], replace(MIXED[0], seed=5), NO_OUTPUT_ACT]
    together = fit(members, data_root, optimizer=population_optimizer(configs))  # 2 epochs of 16 steps
    assert isinstance(together.optimizers().optimizer, MemberSGD | MemberAdam)
    for k, member in enumerate(members):
        alone = fit([member], data_root, optimizer=population_optimizer([configs[k]]))
        assert type(alone.optimizers().optimizer).__module__.startswith("torch.optim")
        mine, solo = together.net.export(k).state_dict(), alone.net.export(0).state_dict()
        for name in mine:  # a rounding apart (each setting multiplies on its own): 1e-5 of the value
            torch.testing.assert_close(mine[name], solo[name], rtol=1e-5, atol=1e-5)


def test_a_member_whose_learning_rate_diverges_leaves_the_others_as_alone(data_root):
    from sherlocked.training.optimizers import population_optimizer

    configs = [{"_target_": "torch.optim.SGD", "_partial_": True, "lr": lr, "momentum": 0.5} for lr in (0.05, 1e30)]
    members = [MemberSpec((784, 16, 10), ("relu", "relu"), seed=0)] * 2
    together = fit(members, data_root, optimizer=population_optimizer(configs))
    alone = fit(members[:1], data_root, optimizer=population_optimizer(configs[:1]))
    assert together.alive.tolist() == [True, False]
    for name, value in together.net.export(0).state_dict().items():
        torch.testing.assert_close(value, alone.net.export(0).state_dict()[name], rtol=0, atol=1e-5)


def test_settings_a_member_wise_optimiser_cannot_honour_are_refused():
    from sherlocked.spec.config import ConfigError
    from sherlocked.training.optimizers import population_optimizer

    sgd = {"_target_": "torch.optim.SGD", "_partial_": True, "momentum": 0.5, "nesterov": True}
    with pytest.raises(ConfigError, match="nesterov"):
        population_optimizer([{**sgd, "lr": 0.1}, {**sgd, "lr": 0.01}])
    rms = {"_target_": "torch.optim.RMSprop", "_partial_": True}
    with pytest.raises(ConfigError, match="RMSprop"):
        population_optimizer([{**rms, "lr": 0.1}, {**rms, "lr": 0.01}])


def test_a_single_runs_progress_bar_counts_epochs_from_1():
    from types import SimpleNamespace

    from sherlocked.training.reporter import EpochBar

    bar = EpochBar()
    bar._trainer = SimpleNamespace(max_epochs=1)  # what Lightning sets as the fit starts
    assert bar._get_train_description(0).strip() == "Epoch 1/1"  # Lightning's own: "Epoch 0/0"
