"""The activation modules, built from the names sherlocked.spec.activations declares; a layer may mix two.

>>> build("relu|tanh")  # first half of the units through ReLU, second half through tanh
Mixed(relu|tanh)
"""

import torch
from torch import Tensor, nn

from sherlocked.spec.activations import ACTIVATIONS, MIX, parse


def module(name: str) -> nn.Module:
    """One activation, as its torch.nn class computes it."""
    return getattr(nn, ACTIVATIONS[name])()


class Mixed(nn.Module):
    """Applies `first` to the first half of the units and `second` to the rest: of dimension `dim`, the features of
    a Linear layer (-1) or the channels of a conv layer (-3, of [..., C, H, W])."""

    def __init__(self, first: str, second: str, dim: int = -1):
        super().__init__()
        self.names, self.dim = (first, second), dim
        self.first, self.second = module(first), module(second)

    def forward(self, x: Tensor) -> Tensor:
        low, high = x.tensor_split([x.shape[self.dim] // 2], dim=self.dim)
        return torch.cat((self.first(low), self.second(high)), dim=self.dim)

    def extra_repr(self) -> str:
        return MIX.join(self.names)

    def __repr__(self) -> str:
        return f"Mixed({self.extra_repr()})"


def build(spec: str, dim: int = -1) -> nn.Module:
    """The module for an activation spec: elementwise, so it works on [B, H] and [K, B, H] alike; a mix splits the
    units of dimension `dim` (-3: a conv layer's channels)."""
    names = parse(spec)
    return module(names[0]) if len(names) == 1 else Mixed(*names, dim=dim)
