"""K independent MLPs trained as one module: stacked weights and batched matmuls.

A solo run is a population of one; there is no other model class. Member k of a
population computes exactly what it would compute alone: its own init (from its
seed), its own batch-norm layers and statistics, its own activations.

    >>> from sherlocked.spec.checks import MemberSpec
    >>> from sherlocked.training.population import Population
    >>> net = Population([MemberSpec((784, 500, 256, 10), ("sigmoid", "sigmoid", "relu"), seed=s) for s in range(4)])
    >>> net(torch.randn(4, 32, 784)).shape  # [members, batch, classes]
    torch.Size([4, 32, 10])
"""

import hashlib
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from sherlocked.spec.checks import MemberSpec
from sherlocked.training.activations import build


def stream_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed per (run seed, purpose), so init and data order never share a stream."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little") >> 1


def init_linear(fan_in: int, fan_out: int, scheme: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Weight [out, in] (nn.Linear's layout) and bias [out] for one member."""
    weight, bias = torch.empty(fan_out, fan_in), torch.zeros(fan_out)
    if scheme == "default":  # what nn.Linear.reset_parameters does
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(fan_in)
        nn.init.uniform_(bias, -bound, bound, generator=generator)
    elif scheme == "kaiming":
        nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(weight, generator=generator)
    else:  # lecun normal: std 1/sqrt(fan_in)
        nn.init.kaiming_normal_(weight, nonlinearity="linear", generator=generator)
    return weight, bias


class StackedBatchNorm(nn.Module):
    """BatchNorm1d for n members at once, each with its own affine parameters and running statistics."""

    def __init__(self, members: int, features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(members, features))
        self.bias = nn.Parameter(torch.zeros(members, features))
        self.register_buffer("running_mean", torch.zeros(members, features))
        self.register_buffer("running_var", torch.ones(members, features))

    def forward(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """x: [n, B, F] for the members at `rows` of this layer's stack (all when None)."""
        rows = slice(None) if rows is None else rows
        if self.training:
            mean, var = x.mean(1), x.var(1, unbiased=False)
            with torch.no_grad():  # nn.BatchNorm1d's update: unbiased variance, exponential average
                n = x.shape[1]
                unbiased = var * n / max(n - 1, 1)
                self.running_mean[rows] = torch.lerp(self.running_mean[rows], mean, self.momentum)
                self.running_var[rows] = torch.lerp(self.running_var[rows], unbiased, self.momentum)
        else:
            mean, var = self.running_mean[rows], self.running_var[rows]
        scale = self.weight[rows] * torch.rsqrt(var + self.eps)
        return (x - mean.unsqueeze(1)) * scale.unsqueeze(1) + self.bias[rows].unsqueeze(1)


class Regroup(torch.autograd.Function):
    """x.index_select(0, order), whose gradient is the gather back by `inverse`: one gather each way, where
    indexing's own gradient fills a tensor of zeros and scatters into it, once per group."""

    @staticmethod
    def forward(ctx, x: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(0, order)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (inverse,) = ctx.saved_tensors
        return grad.index_select(0, inverse), None, None


class Layer(nn.Module):
    """Linear -> [BN] -> activation for every member; members with the same (activation, BN) share one call:
    the members are regrouped so that each group is one slice, then put back in their order."""

    def __init__(self, members: Sequence[MemberSpec], layer: int):
        super().__init__()
        fan_in, fan_out = members[0].widths[layer - 1], members[0].widths[layer]
        weights, biases = [], []
        for m in members:
            generator = torch.Generator().manual_seed(stream_seed(m.seed, f"init/layer{layer}"))
            w, b = init_linear(fan_in, fan_out, m.init, generator)
            weights.append(w.T)
            biases.append(b)
        self.weight = nn.Parameter(torch.stack(weights))  # [K, in, out]: x @ W needs no transpose
        self.bias = nn.Parameter(torch.stack(biases))  # [K, out]

        normed = [k for k, m in enumerate(members) if layer in m.batch_norm]
        self.norm = StackedBatchNorm(len(normed), fan_out) if normed else None
        self.norm_members = normed  # the members in the rows of this layer's batch-norm parameters

        groups: dict[tuple[str, bool], list[int]] = {}
        for k, m in enumerate(members):
            groups.setdefault((m.activation(layer), layer in m.batch_norm), []).append(k)
        self.acts = nn.ModuleList(build(act) for act, _ in groups)
        self.normed = [bn for _, bn in groups]
        self.sizes = [len(ks) for ks in groups.values()]  # each group's slice of the regrouped members
        self.single = len(groups) == 1
        for g, ks in enumerate(groups.values()):
            rows = [normed.index(k) for k in ks] if self.normed[g] else []
            self.register_buffer(f"norm_rows{g}", torch.tensor(rows, dtype=torch.long), persistent=False)
        order = torch.tensor([k for ks in groups.values() for k in ks])
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("inverse", torch.argsort(order), persistent=False)

    def forward(self, x: Tensor, trace: list | None = None) -> Tensor:
        """x [K, B, in] -> [K, B, out]; with `trace`, also appends (pre-activation, activation) of this layer."""
        h = torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)
        if self.single:  # the common case: no gather, no scatter
            pre = self.norm(h) if self.normed[0] else h
            out = self.acts[0](pre)
        else:
            pres, outs = [], []
            grouped = Regroup.apply(h, self.order, self.inverse).split(self.sizes)  # a slice per group
            for g, (act, hg) in enumerate(zip(self.acts, grouped)):
                pres.append(self.norm(hg, getattr(self, f"norm_rows{g}")) if self.normed[g] else hg)
                outs.append(act(pres[-1]))
            out = Regroup.apply(torch.cat(outs), self.inverse, self.order)
            pre = Regroup.apply(torch.cat(pres), self.inverse, self.order) if trace is not None else None
        if trace is not None:
            trace.append((pre, out))
        return out


class Population(nn.Module):
    """K MLPs with the same widths; forward maps [K, B, in] (or a shared [B, in]) to logits [K, B, out]."""

    def __init__(self, members: Sequence[MemberSpec]):
        super().__init__()
        if len({m.widths for m in members}) != 1:
            raise ValueError("a population's members must share their widths")
        self.members = list(members)
        self.layers = nn.ModuleList(Layer(members, layer) for layer in range(1, members[0].layers + 1))

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: Tensor, trace: list | None = None) -> Tensor:
        """With `trace` (a list), every layer appends its (pre-activation, activation), each [K, B, width]."""
        if x.dim() == 2:  # one batch seen by every member (evaluation)
            x = x.expand(len(self), *x.shape)
        for layer in self.layers:
            x = layer(x, trace)
        return x

    def param_groups(self) -> list[dict]:
        """Every parameter in a group of its own, with `rows`: the member in each row of its first dimension."""
        everyone = torch.arange(len(self))
        groups = []
        for layer in self.layers:
            groups += [{"params": [layer.weight], "rows": everyone}, {"params": [layer.bias], "rows": everyone}]
            if layer.norm is not None:
                rows = torch.tensor(layer.norm_members)
                groups += [{"params": [layer.norm.weight], "rows": rows}, {"params": [layer.norm.bias], "rows": rows}]
        return groups

    @torch.no_grad()
    def export(self, k: int) -> nn.Sequential:
        """Member k as a plain nn.Sequential with the same weights and outputs (in eval mode)."""
        spec, modules = self.members[k], []
        for number, layer in enumerate(self.layers, start=1):
            linear = nn.Linear(*layer.weight.shape[1:])
            linear.weight.copy_(layer.weight[k].T)
            linear.bias.copy_(layer.bias[k])
            modules.append(linear)
            if number in spec.batch_norm:
                row = [i for i, m in enumerate(self.members) if number in m.batch_norm].index(k)
                bn = nn.BatchNorm1d(linear.out_features, eps=layer.norm.eps, momentum=layer.norm.momentum)
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(bn, name).copy_(getattr(layer.norm, name)[row])
                modules.append(bn)
            modules.append(build(spec.activation(number)))
        return nn.Sequential(*modules).to(self.layers[0].weight.device)
