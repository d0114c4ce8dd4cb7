"""CNN and residual populations: each member equals the plain network trained alone by a plain PyTorch loop (torch's
own modules, torch.optim.SGD, the same data order), its export computes what it computes, and bad shapes stop in one
line before anything is written."""

import subprocess
import sys
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sherlocked.spec.checks import MemberSpec
from sherlocked.spec.config import ConfigError
from sherlocked.spec.shapes import Conv
from sherlocked.training.data import IndexBatches, StudyDataModule
from sherlocked.training.optimizers import population_optimizer
from sherlocked.training.population import Population, Residual
from tests.test_module import fit

# 1x28x28 -> conv 3x3 pad 1, max pool -> 4x14x14 -> conv 3x3 pad 1 (a skip fits) -> 4x14x14 -> conv 3x3, avg pool
# -> 6x6x6 -> Linear 216 -> 12 -> 10.
CONVS = (Conv(4, 3, 1, "max"), Conv(4, 3, 1, "none"), Conv(6, 3, 0, "avg"))
IMAGE = (1, 28, 28)


def cnn(acts, **kw) -> MemberSpec:
    return MemberSpec((6 * 6 * 6, 12, 10), tuple(acts), convs=CONVS, image=IMAGE, **kw)


MIXED_CNNS = [
    cnn(("relu", "sigmoid", "sigmoid", "relu", "relu"), seed=0),
    cnn(("relu|tanh", "relu", "selu", "sigmoid", "relu"), batch_norm=(1, 2, 4), residual=(2,), seed=1),
    cnn(("tanh", "sigmoid", "relu", "relu", "tanh"), batch_norm=(3, 5), init="kaiming", residual=(2,), seed=2),
    cnn(("sigmoid", "tanh", "relu", "tanh", "relu"), output_activation=False, init="xavier", seed=0),
]
SETTINGS = [  # each member's own lr, momentum and weight decay
    {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.0},
    {"lr": 0.02, "momentum": 0.9, "weight_decay": 1e-3},
    {"lr": 0.1, "momentum": 0.0, "weight_decay": 1e-2},
    {"lr": 0.03, "momentum": 0.5, "weight_decay": 0.0},
]


def plain_run(member: MemberSpec, settings: dict, data_root, epochs: int = 2) -> nn.Module:
    """The member alone, as a user would train it without sherlocked: torch's own modules (the export of its initial
    weights), torch.optim.SGD, the mean cross-entropy of its batches, in the data order its seed gives."""
    data = StudyDataModule("mnist", str(data_root), (0.1307,), (0.3081,), 16, seeds=[member.seed])
    data.setup()
    net = Population([member]).export(0).train()
    optimizer = torch.optim.SGD(net.parameters(), **settings)
    batches = IndexBatches(len(data.train_y), 16, seeds=[member.seed])
    for _ in range(epochs):
        for index in batches:
            optimizer.zero_grad()
            F.cross_entropy(net(data.train_x[index[0]]), data.train_y[index[0]]).backward()
            optimizer.step()
    return net.eval()


def assert_each_member_is_its_plain_run(members, settings, data_root):
    """Weights, biases, BN parameters and running statistics after 2 epochs of 16 steps, and the outputs."""
    configs = [{"_target_": "torch.optim.SGD", "_partial_": True, **one} for one in settings]
    together = fit(members, data_root, optimizer=population_optimizer(configs)).net.eval()
    x = torch.randn(20, members[0].widths[0] if not members[0].convs else 784)
    for k, member in enumerate(members):
        alone = plain_run(member, settings[k], data_root)
        mine, solo = together.export(k).state_dict(), alone.state_dict()
        assert mine.keys() == solo.keys()
        for name in [n for n in mine if not n.endswith("num_batches_tracked")]:  # unused with a BN's momentum
            # a rounding apart: grouped and single convolutions sum in other orders
            torch.testing.assert_close(mine[name], solo[name], rtol=1e-4, atol=1e-5, msg=f"member {k}: {name}")
        torch.testing.assert_close(together(x)[k], alone(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_each_member_of_a_cnn_population_equals_its_plain_run_after_tens_of_steps(data_root):
    """Mixed activations (a mix over channels), BN on conv and Linear layers, inits, a skip, the output activation
    off, and each member's own lr, momentum and weight decay."""
    assert_each_member_is_its_plain_run(MIXED_CNNS, SETTINGS, data_root)


MLP = (784, 16, 16, 16, 10)
RESIDUAL_MLPS = [
    MemberSpec(MLP, ("relu", "sigmoid", "relu", "relu"), residual=(2, 3), seed=0),
    MemberSpec(MLP, ("relu", "sigmoid", "relu", "relu"), seed=1),  # the same without skips
    MemberSpec(MLP, ("tanh", "relu|tanh", "selu", "relu"), batch_norm=(2, 3), residual=(3,), seed=2),
]


@pytest.mark.slow
def test_each_member_of_a_residual_mlp_population_equals_its_plain_run(data_root):
    assert_each_member_is_its_plain_run(RESIDUAL_MLPS, SETTINGS[:3], data_root)


@pytest.mark.slow
def test_a_cnn_trains_on_cifar10s_3x32x32_images(cifar_root):
    """The data module holds images flattened in ToTensor's (C, H, W) order; the population sees them as images."""
    import lightning as L

    from sherlocked.training.module import PopulationModule

    convs = (Conv(4, 3), Conv(6, 3, 1, "max"))  # 3x32x32 -> 4x30x30 -> 6x15x15
    member = MemberSpec((6 * 15 * 15, 10), ("relu", "relu", "relu"), convs=convs, image=(3, 32, 32))
    data = StudyDataModule("cifar10", str(cifar_root), (0.5,) * 3, (0.5,) * 3, 4, seeds=[0], test_batch_size=8)
    module = PopulationModule([member], lambda params: torch.optim.SGD(params, lr=0.01))
    trainer = L.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, datamodule=data)
    assert len(module.member_history(0)["test_acc"]) == 1
    image = data.train_x[:1]
    conv = module.net.export(0)[1]  # nn.Conv2d on the image as torchvision's ToTensor would give it
    mine = module.net.layers[0].transform(image.view(1, 1, 3, 32, 32))[0]
    torch.testing.assert_close(conv(image.view(1, 3, 32, 32)), mine)


def test_a_cnn_member_exports_as_torchs_own_modules_with_the_same_outputs():
    net = Population(MIXED_CNNS)
    net.train()
    for _ in range(3):  # move the running statistics away from their start
        net(torch.randn(4, 8, 784) * 2 + 1)
    net.eval()
    x = torch.randn(5, 784)
    for k in range(len(MIXED_CNNS)):
        plain = net.export(k).eval()
        torch.testing.assert_close(plain(x), net(x)[k], rtol=1e-5, atol=1e-5)
    kinds = [type(m).__name__ for m in net.export(1)]
    assert kinds == [
        "Unflatten", "Conv2d", "BatchNorm2d", "Mixed", "MaxPool2d", "Residual", "Conv2d", "SELU", "AvgPool2d",
        "Flatten", "Linear", "BatchNorm1d", "Sigmoid", "Linear", "ReLU",
    ]  # fmt: skip
    skip = net.export(1)[5]
    assert isinstance(skip, Residual) and [type(m).__name__ for m in skip.body] == ["Conv2d", "BatchNorm2d"]


def test_a_mixed_activation_on_a_conv_layer_splits_its_channels():
    member = cnn(("relu|tanh", "relu", "relu", "relu", "relu"))
    trace = []
    Population([member])(torch.randn(1, 3, 784), trace)
    pre, out = trace[0]  # [K, B, C, H, W]
    torch.testing.assert_close(out[:, :, :2], pre[:, :, :2].relu())
    torch.testing.assert_close(out[:, :, 2:], pre[:, :, 2:].tanh())


def test_a_skip_adds_the_layers_input_before_its_activation():
    plain = MemberSpec(MLP, ("relu", "sigmoid", "relu", "relu"), seed=0)
    net, skipped = Population([plain]), Population([replace(plain, residual=(2,))])
    x = torch.randn(1, 4, 784)
    hidden = net.layers[0](x)
    torch.testing.assert_close(skipped.layers[1](hidden), torch.sigmoid(net.layers[1].transform(hidden) + hidden))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"residual": (3,)}, r"model.residual names layer 3, whose input \(4, 14, 14\) and output \(6, 6, 6\) differ"),
        ({"residual": (1,)}, r"names layer 1, whose input \(1, 28, 28\) and output \(4, 14, 14\) differ"),
        ({"residual": (5,)}, "names layer 5, but the skips go around hidden layers 1..4"),
        ({"batch_norm": (6,)}, "names layer 6, but the model has layers 1..5"),
    ],
)
def test_bad_cnn_specs_are_refused(kw, message):
    with pytest.raises(ConfigError, match=message):
        cnn(("relu",) * 5, **kw)


def test_the_activation_count_names_the_conv_and_linear_layers():
    with pytest.raises(ConfigError, match=r"3 activations .* for 3 conv and 2 Linear layers .*; give act1..act5"):
        cnn(("relu",) * 3)


BAD_SHAPES = [
    (["model.kernel=31"], "conv layer 1's kernel 31 (padding 0) leaves nothing of its 28x28 input"),
    (["model.channels=[4,8,16]"], "conv layer 3's kernel 5 (padding 0) leaves nothing of its 4x4 input"),
    (["model.pool=[max,none,max]"], "model.pool=['max', 'none', 'max'] must be max | avg | none, once for every"),
    (["model.kernel=0"], "model.kernel=0 must be a positive whole number"),
    (["model.kernel=2.5"], "model.kernel=2.5 must be a positive whole number"),
    (["model.padding=-1"], "model.padding=-1 must be a whole number >= 0"),
    (["model.channels=[0,4]"], "model.channels=[0, 4] must be a list of positive whole numbers"),
    (["model.channels=nan"], "model.channels=nan must be a list of positive whole numbers"),
    (["model.residual=maybe"], "model.residual='maybe' must be true, false or a list of layer numbers"),
    (["+act4=relu"], "4 activations ['relu', 'relu', 'relu', 'relu'] for 2 conv and 1 Linear layers"),
    (["model.residual=true"], "model.residual=true, but no hidden layer keeps its input's shape"),
    (["model.widths=[12,9]", "+act4=relu"], "model.widths=[12, 9] must end with mnist's 10 classes"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "message"), BAD_SHAPES)
def test_a_bad_shape_stops_with_one_line_exit_2_and_nothing_written(tmp_path, overrides, message):
    for multirun in ([], ["-m", "hydra/launcher=population", "seed=0,1"]):
        out = tmp_path / ("sweep" if multirun else "run")
        where = f"hydra.sweep.dir={out}" if multirun else f"hydra.run.dir={out}"
        command = [sys.executable, "-m", "sherlocked.train", *multirun, "model=cnn", *overrides, where]
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"sherlocked: {message}"), done.stderr
        assert not out.exists()


@pytest.mark.slow
def test_a_residual_on_layers_whose_widths_differ_stops_with_one_line(tmp_path):
    command = [sys.executable, "-m", "sherlocked.train", "model.widths=[784,64,32,10]", "model.residual=[2]"]
    done = subprocess.run([*command, f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "sherlocked: model.residual names layer 2, whose input (64,) and output (32,) differ "
        "(model.widths=[784, 64, 32, 10]): a skip adds a layer's input to its output"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh", "selu", "leaky_relu", "relu|tanh", "gelu", "mish"])
def test_max_pooling_before_a_non_decreasing_activation_gives_what_the_activation_then_pooling_gives(act):
    """pools_first: the values and every gradient as the plain network's order computes them (gelu and mish dip, so
    they keep that order; a mix over channels of two non-decreasing ones pools first too)."""
    members = [cnn((act, act, "relu", "relu", "relu"), seed=3), cnn(("tanh", "relu", "relu", "relu", "relu"), seed=4)]
    for population in (members[:1], members):  # alone, and in two groups of activations (regrouped)
        net = Population(population)
        pooled = act.split("|")[0] not in ("gelu", "mish")
        assert [layer.pools_first for layer in net.layers[:3]] == [pooled, False, False]
        plain = net.export(0)
        x = torch.randn(len(population), 6, 784) * 3  # pooling windows with negatives and saturated values
        net.zero_grad()
        mine = net(x)[0]
        mine.square().sum().backward()
        out = plain(x[0])
        out.square().sum().backward()
        torch.testing.assert_close(mine, out, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(net.layers[0].weight.grad[0], plain[1].weight.grad, rtol=1e-4, atol=1e-5)
