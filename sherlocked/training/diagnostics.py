"""Why a combination fails: dead units, saturation and gradient flow, per layer and per member.

The study left open why (sigmoid, relu) as the last two activations breaks learning: is
sigmoid(h2) W3 + b3 < 0 for most inputs (dead output ReLUs: no gradient), or do the sigmoid
units saturate so gradients vanish? These measurements answer it for any combination,
on a fixed probe batch of test images, for every member of a population at once:

- every layer: mean and std of the pre-activation (the activation's input, after BN);
- a conv layer's units are its channels, each seen at every position of every probe image: a
  dead channel is dead at every position, saturation counts its outputs at every position;
- every layer, whatever its activation: the fraction of outputs where the activation is flat
  (its slope |f'(x)| < 0.01: it passes under 1% of the gradient), and of units flat on every
  probe image (they pass almost no gradient at all): what "dead" means for any function;
- relu / leaky_relu layers: the fraction of units dead (input <= 0 on every probe image: a ReLU
  unit then outputs 0 and passes no gradient, a leaky one only its 0.01 slope), of zero outputs
  (relu);
- sigmoid / tanh layers: the fraction of saturated outputs (sigmoid < 0.01 or > 0.99, |tanh| > 0.99);
- the output layer: the fraction of logits <= 0, of samples whose logits are all <= 0, and of
  samples for which every output unit is flat (no gradient reaches their logits);
- the gradient norm of each layer's weights and biases from the last training step.

The smooth ReLU-likes (selu, elu, softplus, gelu, silu, mish) have no dead units: they pass
gradient below zero too, so only the slope measures describe them. A value that does not apply
to a member's activation is NaN.
"""

import math

import torch
from torch import Tensor

from sherlocked.spec.activations import family
from sherlocked.training.activations import build
from sherlocked.training.population import Population

# Where each activation that saturates (sherlocked.spec.activations.SATURATING) counts as saturated.
SATURATION = {"sigmoid": lambda a: (a < 0.01) | (a > 0.99), "tanh": lambda a: a.abs() > 0.99}
FLAT = 0.01  # a slope below this passes under 1% of the gradient


def slopes(spec: str, pre: Tensor) -> Tensor:
    """|f'(pre)| elementwise, for the activation spec, by autograd (so any activation, mixes included)."""
    with torch.enable_grad():
        x = pre.detach().requires_grad_()
        (grad,) = torch.autograd.grad(build(spec)(x).sum(), x)
    return grad.abs()


def flat(specs: list[str], pre: Tensor) -> Tensor:
    """Where each member's activation is flat on pre [K, B, W]: members with one spec share one call."""
    result = torch.empty(pre.shape, dtype=torch.bool, device=pre.device)
    for spec in set(specs):
        rows = torch.tensor([k for k, s in enumerate(specs) if s == spec], device=pre.device)
        result[rows] = slopes(spec, pre[rows]) < FLAT
    return result


def where(mask: list[bool], values: Tensor) -> Tensor:
    """values for the members where mask holds, NaN elsewhere."""
    keep = torch.tensor(mask, device=values.device)
    return torch.where(keep, values, torch.full_like(values, math.nan))


def units_last(x: Tensor) -> Tensor:
    """A layer's values as [K, samples, units]: a conv layer's [K, B, C, H, W] as [K, B*H*W, C], its units the
    channels, each seen at every position (a dead channel is dead at every position of every probe image)."""
    return x if x.dim() == 3 else x.movedim(2, -1).flatten(1, -2)


@torch.no_grad()
def measure(net: Population, probe: Tensor) -> tuple[dict[str, Tensor], list[tuple[Tensor, Tensor]]]:
    """Per-member values [K] keyed "layer{n}/{metric}" and "output/{metric}", and the traced layers.

    Runs the probe in eval mode (batch norm on running statistics), so it changes nothing in training.
    """
    training = net.training
    net.eval()
    trace: list[tuple[Tensor, Tensor]] = []
    net(probe, trace)
    net.train(training)
    values = {}
    for number, (pre, post) in enumerate(trace, start=1):
        key = f"layer{number}"
        pre, post = units_last(pre), units_last(post)
        specs = [m.activation(number) for m in net.members]
        families = [family(spec) for spec in specs]
        values[f"{key}/pre_mean"] = pre.mean((1, 2))
        values[f"{key}/pre_std"] = pre.flatten(1).std(1)
        flat_outputs = flat(specs, pre)
        values[f"{key}/flat"] = flat_outputs.float().mean((1, 2))
        values[f"{key}/flat_units"] = flat_outputs.all(1).float().mean(-1)
        dying = [f == "relu" for f in families]
        values[f"{key}/dead"] = where(dying, (pre <= 0).all(1).float().mean(-1))
        values[f"{key}/zero"] = where([s == "relu" for s in specs], (post == 0).float().mean((1, 2)))
        saturated = torch.full_like(values[f"{key}/pre_mean"], math.nan)
        for name, test in SATURATION.items():
            members = torch.tensor([f == name for f in families], device=post.device)
            saturated = torch.where(members, test(post).float().mean((1, 2)), saturated)
        values[f"{key}/saturated"] = saturated
    logits = trace[-1][0]  # what the output activation receives
    values["output/logits_nonpos"] = (logits <= 0).float().mean((1, 2))
    values["output/samples_all_nonpos"] = (logits <= 0).all(-1).float().mean(1)
    values["output/samples_no_gradient"] = flat_outputs.all(-1).float().mean(1)  # the output layer's, from the loop
    return values, trace


@torch.no_grad()
def grad_norms(net: Population) -> dict[str, Tensor]:
    """L2 norm of each layer's weight and bias gradients, per member (NaN before the first backward)."""
    values = {}
    for number, layer in enumerate(net.layers, start=1):
        for name, param in (("grad_w", layer.weight), ("grad_b", layer.bias)):
            if param.grad is None:
                values[f"layer{number}/{name}"] = torch.full((len(net),), math.nan, device=param.device)
            else:
                values[f"layer{number}/{name}"] = torch.linalg.vector_norm(param.grad.flatten(1), dim=1)
    return values


def add_histogram(writer, tag: str, values: Tensor, step: int, bins: int = 64) -> None:
    """A TensorBoard histogram counted by torch.histc: ~6x faster than add_histogram's numpy path,
    which matters at one histogram per layer, member and epoch."""
    values = values.detach().flatten().float()
    values = values[torch.isfinite(values)]  # a diverged member's NaNs and infs have no place on an axis
    if values.numel() == 0:
        return
    low, high = values.min().item(), values.max().item()
    high = max(high, low + 1e-6)
    counts = torch.histc(values, bins, low, high)
    limits = torch.linspace(low, high, bins + 1)[1:]
    total, squares = values.sum().item(), values.square().sum().item()
    writer.add_histogram_raw(tag, low, high, values.numel(), total, squares, limits.tolist(), counts.tolist(), step)
