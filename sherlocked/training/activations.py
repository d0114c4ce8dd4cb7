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
    """Applies `first` to the first half of the last dimension and `second` to the rest."""

    def __init__(self, first: str, second: str):
        super().__init__()
        self.names = (first, second)
        self.first, self.second = module(first), module(second)

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
    return module(names[0]) if len(names) == 1 else Mixed(*names)
