"""Diagnostics on hand-built networks whose answers are known."""

import math

import pytest
import torch

from sherlocked.spec.activations import family
from sherlocked.spec.checks import MemberSpec
from sherlocked.training.diagnostics import grad_norms, measure
from sherlocked.training.population import Population

WIDTHS = (12, 8, 6, 4)


def net(*acts, **kw) -> Population:
    return Population([MemberSpec(WIDTHS, tuple(acts), **kw)])


def test_families_decide_which_measures_apply():
    """Only relu and leaky_relu units can die; the smooth ReLU-likes pass gradient below zero too."""
    specs = ("relu", "leaky_relu", "selu", "elu", "gelu", "silu", "mish", "softplus", "sigmoid", "tanh", "relu|tanh")
    assert [family(a) for a in specs] == ["relu", "relu", None, None, None, None, None, None, "sigmoid", "tanh", None]


@pytest.mark.parametrize("act", ["selu", "elu", "gelu", "silu", "mish", "softplus"])
def test_smooth_relu_likes_are_never_called_dead_but_flat_where_their_slope_vanishes(act):
    population = net(act, "relu", "relu")
    with torch.no_grad():
        population.layers[0].bias.fill_(-1e3)
    values, _ = measure(population, torch.randn(32, 12))
    assert math.isnan(values["layer1/dead"].item()) and math.isnan(values["layer1/zero"].item())
    assert values["layer1/flat"].item() == 1.0 and values["layer1/flat_units"].item() == 1.0
    with torch.no_grad():
        population.layers[0].bias.fill_(-1.0)  # below zero, yet still passing gradient
        population.layers[0].weight.zero_()
    values, _ = measure(population, torch.randn(32, 12))
    assert values["layer1/flat"].item() == values["layer1/flat_units"].item() == 0.0  # |slope| >= 0.06 at -1


def test_a_dead_relu_is_flat_and_a_dead_leaky_relu_keeps_its_slope():
    population = net("relu", "leaky_relu", "relu")
    with torch.no_grad():
        population.layers[0].bias.fill_(-1e3)
        population.layers[1].bias.fill_(-1e3)
    values, _ = measure(population, torch.randn(32, 12))
    assert values["layer1/dead"].item() == values["layer1/flat_units"].item() == 1.0
    assert values["layer2/dead"].item() == 1.0 and values["layer2/flat_units"].item() == 0.0
    assert math.isnan(values["layer2/zero"].item())  # a leaky unit never outputs exactly zero


@pytest.mark.parametrize(("output", "no_gradient"), [("relu", 1.0), ("selu", 0.0), ("identity", 0.0)])
def test_samples_reach_no_gradient_only_where_every_output_unit_is_flat(output, no_gradient):
    population = net("relu", "relu", output)
    with torch.no_grad():
        population.layers[2].weight.zero_()
        population.layers[2].bias.fill_(-1.0)  # every logit is -1
    values, _ = measure(population, torch.randn(10, 12))
    assert values["output/samples_all_nonpos"].item() == 1.0
    assert values["output/samples_no_gradient"].item() == no_gradient


def test_a_layer_forced_dead_reports_all_units_dead_and_all_outputs_zero():
    population = net("relu", "relu", "relu")
    with torch.no_grad():
        population.layers[0].bias.fill_(-1e3)
    values, _ = measure(population, torch.randn(32, 12))
    assert values["layer1/dead"].item() == 1.0 and values["layer1/zero"].item() == 1.0
    assert math.isnan(values["layer1/saturated"].item())  # not a saturating activation


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_a_saturating_layer_fed_huge_inputs_reports_saturation_one(act):
    population = net(act, "relu", "relu")
    with torch.no_grad():
        population.layers[0].weight.fill_(1.0)
    huge = 100 * torch.randn(64, 1).sign().expand(64, 12)  # every pre-activation is +-1200 + bias
    values, _ = measure(population, huge)
    assert values["layer1/saturated"].item() == 1.0
    assert math.isnan(values["layer1/dead"].item())


def test_output_measures_count_non_positive_logits_and_samples_without_any_positive_logit():
    population = net("relu", "relu", "relu")
    with torch.no_grad():
        population.layers[2].weight.zero_()
        population.layers[2].bias.copy_(torch.tensor([[-1.0, -2.0, -0.5, -3.0]]))
    values, _ = measure(population, torch.randn(10, 12))
    assert values["output/logits_nonpos"].item() == 1.0 and values["output/samples_all_nonpos"].item() == 1.0
    with torch.no_grad():
        population.layers[2].bias[0, 2] = 0.5
    values, _ = measure(population, torch.randn(10, 12))
    assert values["output/logits_nonpos"].item() == 0.75 and values["output/samples_all_nonpos"].item() == 0.0


def test_pre_activation_statistics_are_those_of_the_traced_layer():
    population = net("tanh", "relu", "relu", batch_norm=(1,))
    x = torch.randn(40, 12)
    values, trace = measure(population, x)
    pre = trace[0][0][0]
    assert values["layer1/pre_mean"].item() == pytest.approx(pre.mean().item())
    assert values["layer1/pre_std"].item() == pytest.approx(pre.std().item())
    plain = population.export(0).eval()
    torch.testing.assert_close(pre, plain[1](plain[0](x)))  # after Linear and BN, before tanh


def test_gradient_norms_are_the_norms_of_each_members_gradients():
    population = Population([MemberSpec(WIDTHS, ("relu", "tanh", "relu"), seed=s) for s in range(3)])
    assert math.isnan(grad_norms(population)["layer1/grad_w"][0].item())
    population(torch.randn(3, 16, 12)).square().sum().backward()
    norms = grad_norms(population)
    for number, layer in enumerate(population.layers, start=1):
        for k in range(3):
            assert norms[f"layer{number}/grad_w"][k].item() == pytest.approx(
                torch.linalg.vector_norm(layer.weight.grad[k]).item()
            )
            assert norms[f"layer{number}/grad_b"][k].item() == pytest.approx(
                torch.linalg.vector_norm(layer.bias.grad[k]).item()
            )


def test_a_populations_diagnostics_are_each_members_solo_diagnostics_and_change_nothing():
    members = [
        MemberSpec(WIDTHS, ("sigmoid", "sigmoid", "relu"), seed=0),
        MemberSpec(WIDTHS, ("relu", "tanh", "selu"), batch_norm=(1, 2, 3), seed=1),
        MemberSpec(WIDTHS, ("relu|tanh", "relu", "sigmoid"), batch_norm=(2,), seed=2),
    ]
    together, batch, probe = Population(members), torch.randn(3, 16, 12), torch.randn(20, 12)
    together(batch)  # training mode: moves the BN running statistics
    before = {name: t.clone() for name, t in together.state_dict().items()}
    values, _ = measure(together, probe)
    assert together.training and all(torch.equal(before[n], t) for n, t in together.state_dict().items())
    for k, member in enumerate(members):
        alone = Population([member])  # the same seed gives the same init
        alone(batch[k : k + 1])
        solo, _ = measure(alone, probe)
        for name, value in values.items():
            torch.testing.assert_close(value[k : k + 1], solo[name], equal_nan=True, rtol=1e-5, atol=1e-6)
