import math

import pytest
import torch

from sherlocked.spec.checks import MemberSpec, batch_norm_layers
from sherlocked.spec.config import ConfigError
from sherlocked.training.population import Population

WIDTHS = (20, 16, 12, 10)


def spec(acts=("relu", "relu", "relu"), **kw) -> MemberSpec:
    return MemberSpec(WIDTHS, tuple(acts), **kw)


@pytest.mark.parametrize(
    ("value", "layers"), [("none", ()), (None, ()), ("all", (1, 2, 3)), ("last", (3,)), ([3, 1], (1, 3)), (2, (2,))]
)
def test_batch_norm_placements_resolve_to_layer_numbers(value, layers):
    assert batch_norm_layers(value, 3) == layers


@pytest.mark.parametrize("value", ["first", ["a"], True])
def test_unknown_batch_norm_values_are_refused_with_the_choices(value):
    with pytest.raises(ConfigError, match="none, all, last, or a list of layer numbers"):
        batch_norm_layers(value, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"acts": ("relu", "relu")}, "2 activations .* for 3 layers"),
        ({"batch_norm": (4,)}, "names layer 4, but the model has layers 1..3"),
        ({"init": "orthogonal"}, "unknown model.init 'orthogonal'; choose from default, kaiming, xavier, lecun"),
        ({"acts": ("relu", "nope", "relu")}, "unknown activation 'nope'"),
    ],
)
def test_bad_member_specs_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        spec(**kwargs)


@pytest.mark.parametrize("batch_norm", [(), (1, 2, 3), (3,), (1, 3), (2,)])
def test_batch_norm_sits_between_linear_and_activation_and_exports_faithfully(batch_norm):
    net = Population([spec(("relu", "sigmoid", "tanh"), batch_norm=batch_norm, seed=s) for s in range(2)])
    net.train()
    for _ in range(3):  # move the running statistics away from their start
        net(torch.randn(2, 32, 20) * 2 + 1)
    net.eval()
    x = torch.randn(7, 20)
    for k in range(2):
        plain = net.export(k).eval()
        kinds = [type(m).__name__ for m in plain]
        expected = []
        for layer, act in zip((1, 2, 3), ("ReLU", "Sigmoid", "Tanh")):
            expected += ["Linear", *(["BatchNorm1d"] if layer in batch_norm else []), act]
        assert kinds == expected
        torch.testing.assert_close(plain(x), net(x)[k], rtol=1e-5, atol=1e-6)


def test_the_output_activation_can_be_switched_off():
    net = Population([spec(output_activation=False)])
    assert type(net.export(0)[-1]).__name__ == "Identity"
    assert (net(torch.randn(64, 20)) < 0).any()  # logits, not ReLU outputs


def test_each_member_of_a_mixed_population_computes_what_it_computes_alone():
    members = [
        spec(("sigmoid", "sigmoid", "relu"), seed=0),
        spec(("relu|tanh", "tanh", "selu"), batch_norm=(1, 2, 3), seed=1),
        spec(("relu", "relu", "relu"), batch_norm=(3,), seed=2),
        spec(("sigmoid", "sigmoid", "relu"), batch_norm=(2,), seed=3, init="kaiming"),
    ]
    together = Population(members)
    x = torch.randn(4, 9, 20)
    out = together(x)
    for k, member in enumerate(members):
        # batched and single matmuls may sum in another order: equal to fp32 rounding
        torch.testing.assert_close(out[k : k + 1], Population([member])(x[k : k + 1]), rtol=1e-5, atol=1e-6)


def test_a_seed_determines_the_init_and_different_seeds_differ():
    a, b, c = (Population([spec(seed=s)]) for s in (5, 5, 6))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


@pytest.mark.parametrize(
    ("init", "std", "bias_zero"),
    [
        ("default", 1 / math.sqrt(3 * 400), False),
        ("kaiming", math.sqrt(2 / 400), True),
        ("xavier", math.sqrt(2 / (400 + 300)), True),
        ("lecun", math.sqrt(1 / 400), True),
    ],
)
def test_init_schemes_have_their_textbook_scale(init, std, bias_zero):
    net = Population([MemberSpec((400, 300, 10), ("relu", "relu"), init=init)])
    weight = net.layers[0].weight[0]
    assert weight.std().item() == pytest.approx(std, rel=0.03)
    assert (net.layers[0].bias == 0).all().item() is bias_zero
