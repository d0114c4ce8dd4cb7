"""Activation functions by name, and layers that mix two of them over halves of their units.

>>> build("relu|tanh")  # first half of the units through ReLU, second half through tanh
Mixed(relu|tanh)
"""

import torch
from torch import Tensor, nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
    "mish": nn.Mish,
    "identity": nn.Identity,
}

# The separator for a layer whose units are split between two activations.
MIX = "|"


class ConfigError(ValueError):
    """A bad configuration value; its message is the one line a user sees."""


def parse(spec: str) -> list[str]:
    """Split an activation spec ("relu" or "relu|tanh") into known names, or raise ConfigError."""
    names = str(spec).split(MIX)
    if len(names) > 2:
        raise ConfigError(f"activation {spec!r} mixes {len(names)} functions; a layer mixes at most two")
    for name in names:
        if name not in ACTIVATIONS:
            where = f" in {spec!r}" if name != spec else ""
            raise ConfigError(f"unknown activation {name!r}{where}; choose from {', '.join(ACTIVATIONS)}")
    return names


class Mixed(nn.Module):
    """Applies `first` to the first half of the last dimension and `second` to the rest."""

    def __init__(self, first: str, second: str):
        super().__init__()
        self.names = (first, second)
        self.first, self.second = ACTIVATIONS[first](), ACTIVATIONS[second]()

    def forward(self, x: Tensor) -> Tensor:
        half = x.shape[-1] // 2
        return torch.cat((self.first(x[..., :half]), self.second(x[..., half:])), dim=-1)

    def extra_repr(self) -> str:
        return MIX.join(self.names)

    def __repr__(self) -> str:
        return f"Mixed({self.extra_repr()})"


def build(spec: str) -> nn.Module:
    """The module for an activation spec: elementwise, so it works on [B, H] and [K, B, H] alike."""
    names = parse(spec)
    return ACTIVATIONS[names[0]]() if len(names) == 1 else Mixed(*names)
