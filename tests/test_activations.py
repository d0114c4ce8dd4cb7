import pytest
import torch
import torch.nn.functional as F

from sherlocked.spec.activations import ACTIVATIONS, parse
from sherlocked.spec.config import ConfigError
from sherlocked.training.activations import Mixed, build

REFERENCE = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "selu": F.selu,
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
    "leaky_relu": F.leaky_relu,
    "softplus": F.softplus,
    "mish": F.mish,
    "identity": lambda x: x,
}


def test_the_registry_is_the_documented_set():
    assert set(ACTIVATIONS) == set(REFERENCE)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_every_activation_computes_its_function_on_population_shaped_input(name):
    x = torch.randn(3, 5, 8) * 4
    torch.testing.assert_close(build(name)(x), REFERENCE[name](x), rtol=0, atol=0)


def test_a_mixed_layer_applies_one_function_to_each_half_of_its_units():
    x = torch.randn(2, 4, 6) * 3
    y = build("relu|tanh")(x)
    assert isinstance(build("relu|tanh"), Mixed)
    torch.testing.assert_close(y[..., :3], F.relu(x[..., :3]))
    torch.testing.assert_close(y[..., 3:], torch.tanh(x[..., 3:]))


def test_a_mixed_layer_with_an_odd_width_gives_the_extra_unit_to_the_second_function():
    x = -torch.ones(1, 5)
    assert build("relu|identity")(x).tolist() == [[0, 0, -1, -1, -1]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("foo", "unknown activation 'foo'; choose from relu, tanh"),
        ("relu|bar", "'bar' in 'relu|bar'"),
        ("relu|tanh|selu", "at most two"),
    ],
)
def test_bad_specs_name_the_value_and_the_choices(spec, message):
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        parse(spec)
