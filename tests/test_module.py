import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch.optim import SGD

from sherlocked.data import StudyDataModule
from sherlocked.module import MemberMean, PopulationModule
from sherlocked.population import MemberSpec

SPEC = MemberSpec((784, 16, 10), ("relu", "relu"))


def fit(members, data_root, poison=None, loggers=(), diagnostics=None):
    data = StudyDataModule("mnist", str(data_root), (0.1307,), (0.3081,), 16, seeds=[m.seed for m in members])
    module = PopulationModule(members, lambda params: SGD(params, lr=0.05, momentum=0.5), loggers, diagnostics)
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

    def loggers(name, n):
        return [TensorBoardLogger(str(tmp_path / name / str(k)), name="tb", version="") for k in range(n)]

    poisoned = fit(members, data_root, poison=0, loggers=loggers("mixed", 2), diagnostics=diagnostics)
    alone = fit(members[1:], data_root, loggers=loggers("alone", 1), diagnostics=diagnostics)
    assert poisoned.alive.tolist() == [False, True]
    mixed, solo = poisoned.member_diagnostics(1), alone.member_diagnostics(0)
    assert set(mixed) == set(solo) and len(mixed["layer1/dead"]) == 2
    for name, values in solo.items():
        assert mixed[name] == pytest.approx(values, rel=1e-5, abs=1e-6, nan_ok=True), name
    assert poisoned.member_history(1) == alone.member_history(0)
    assert (tmp_path / "mixed" / "0" / "tb").exists()  # the diverged member's run is written too


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
