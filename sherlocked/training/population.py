"""K independent networks trained as one module: stacked weights, batched matmuls and grouped convolutions.

A solo run is a population of one; there is no other model class. Member k of a
population computes what it would compute alone: its own init (from its seed), its own
batch-norm layers and statistics, its own activations and skips. An MLP's member does so
bit for bit; a CNN's to fp32's rounding (a grouped convolution of several input channels
sums in another order than one member's convolution does: ~1e-8 a layer).

    >>> from sherlocked.spec.checks import MemberSpec
    >>> from sherlocked.training.population import Population
    >>> net = Population([MemberSpec((784, 500, 256, 10), ("sigmoid", "sigmoid", "relu"), seed=s) for s in range(4)])
    >>> net(torch.randn(4, 32, 784)).shape  # [members, batch, classes]
    torch.Size([4, 32, 10])

A layer is a Block: what its kind computes (LinearLayer: a batched matmul; ConvLayer: one
grouped convolution, the members folded into its channels), then what every kind shares
(batch norm, the skip, the activations grouped per member). A new kind of layer is one Block
subclass here and its shape rule in sherlocked.spec.shapes.
"""

import hashlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sherlocked.spec.activations import NON_DECREASING, parse
from sherlocked.spec.checks import MemberSpec
from sherlocked.spec.shapes import POOL_SIZE
from sherlocked.training.activations import build


def stream_seed(seed: int, purpose: str) -> int:
    """An independent 63-bit seed per (run seed, purpose), so init and data order never share a stream."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little") >> 1


def init_weight(shape: tuple[int, ...], scheme: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Weight (nn.Linear's [out, in] or nn.Conv2d's [out, in, k, k] layout) and bias [out] for one member."""
    weight, bias = torch.empty(shape), torch.zeros(shape[0])
    if scheme == "default":  # what nn.Linear.reset_parameters and nn.Conv2d.reset_parameters do
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(math.prod(shape[1:]))  # fan in
        nn.init.uniform_(bias, -bound, bound, generator=generator)
    elif scheme == "kaiming":
        nn.init.kaiming_normal_(weight, nonlinearity="relu", generator=generator)
    elif scheme == "xavier":
        nn.init.xavier_uniform_(weight, generator=generator)
    else:  # lecun normal: std 1/sqrt(fan_in)
        nn.init.kaiming_normal_(weight, nonlinearity="linear", generator=generator)
    return weight, bias


class StackedBatchNorm(nn.Module):
    """BatchNorm1d (x [n, B, F]) or BatchNorm2d (x [n, B, C, H, W]) for n members at once, each with its own affine
    parameters and running statistics."""

    def __init__(self, members: int, features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(members, features))
        self.bias = nn.Parameter(torch.zeros(members, features))
        self.register_buffer("running_mean", torch.zeros(members, features))
        self.register_buffer("running_var", torch.ones(members, features))

    def forward(self, x: Tensor, rows: Tensor | None = None) -> Tensor:
        """x for the members at `rows` of this layer's stack (all when None)."""
        rows = slice(None) if rows is None else rows
        over = (1, *range(3, x.dim()))  # the batch, and a conv layer's positions: statistics per member and channel
        if self.training:
            mean, var = x.mean(over), x.var(over, unbiased=False)
            with torch.no_grad():  # nn.BatchNorm's update: unbiased variance, exponential average
                n = x.numel() // (x.shape[0] * x.shape[2])
                unbiased = var * n / max(n - 1, 1)
                self.running_mean[rows] = torch.lerp(self.running_mean[rows], mean, self.momentum)
                self.running_var[rows] = torch.lerp(self.running_var[rows], unbiased, self.momentum)
        else:
            mean, var = self.running_mean[rows], self.running_var[rows]
        scale = self.weight[rows] * torch.rsqrt(var + self.eps)
        shape = (x.shape[0], 1, x.shape[2], *(1,) * (x.dim() - 3))  # [n, F] against x's dimensions
        return (x - mean.view(shape)) * scale.view(shape) + self.bias[rows].view(shape)

    def export(self, row: int, batch_norm: type[nn.Module]) -> nn.Module:
        """Row `row`'s batch norm as torch's own (nn.BatchNorm1d or nn.BatchNorm2d)."""
        norm = batch_norm(self.weight.shape[1], eps=self.eps, momentum=self.momentum)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(norm, name).copy_(getattr(self, name)[row])
        return norm


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


class Residual(nn.Module):
    """An exported member's layer with an identity skip: activation(body(x) + x)."""

    def __init__(self, body: nn.Module, activation: nn.Module):
        super().__init__()
        self.body, self.activation = body, activation

    def forward(self, x: Tensor) -> Tensor:
        return self.activation(self.body(x) + x)


class Block(nn.Module):
    """One layer of every member: what its kind computes (transform) -> [BN] -> [+ its input] -> activation ->
    what follows (after: a conv layer's pooling). Members with the same (activation, BN, skip) share one call: the
    members are regrouped so that each group is one slice, then put back in their order."""

    units_dim = -1  # the dimension of the units: a mixed activation splits it, batch norm normalises each
    max_pooled = False  # whether `after` max-pools (a conv layer's)
    batch_norm: type[nn.Module] = nn.BatchNorm1d  # an exported member's

    def __init__(self, members: Sequence[MemberSpec], layer: int):
        super().__init__()
        self.number = layer
        self.shape = shape = members[0].shapes[layer - 1]
        weights, biases = [], []
        for m in members:
            generator = torch.Generator().manual_seed(stream_seed(m.seed, f"init/layer{layer}"))
            w, b = init_weight(self.weight_shape(), m.init, generator)
            weights.append(w)
            biases.append(b)
        self.weight = nn.Parameter(self.stacked(torch.stack(weights)))
        self.bias = nn.Parameter(torch.stack(biases))  # [K, out]

        normed = [k for k, m in enumerate(members) if layer in m.batch_norm]
        self.norm = StackedBatchNorm(len(normed), shape.pre[0]) if normed else None
        self.norm_members = normed  # the members in the rows of this layer's batch-norm parameters

        groups: dict[tuple[str, bool, bool], list[int]] = {}
        for k, m in enumerate(members):
            groups.setdefault((m.activation(layer), layer in m.batch_norm, layer in m.residual), []).append(k)
        self.acts = nn.ModuleList(build(act, self.units_dim) for act, _, _ in groups)
        self.normed = [bn for _, bn, _ in groups]
        self.skips = [skip for _, _, skip in groups]
        self.sizes = [len(ks) for ks in groups.values()]  # each group's slice of the regrouped members
        self.single = len(groups) == 1
        # Max pooling commutes with a non-decreasing activation (the max of f is f of the max): pooled first, the
        # activation runs on a quarter of the values, forward and backward (16 CNNs: 7.5 of a 35 ms step went into
        # ReLU over tensors too big for the cache). Not with a trace: the diagnostics look at every position.
        self.pools_first = self.max_pooled and all(
            all(name in NON_DECREASING for name in parse(act)) for act, _, _ in groups
        )
        for g, ks in enumerate(groups.values()):
            rows = [normed.index(k) for k in ks] if self.normed[g] else []
            self.register_buffer(f"norm_rows{g}", torch.tensor(rows, dtype=torch.long), persistent=False)
        order = torch.tensor([k for ks in groups.values() for k in ks])
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("inverse", torch.argsort(order), persistent=False)

    def weight_shape(self) -> tuple[int, ...]:
        """One member's weight, in torch's own module's layout (what init_weight draws)."""
        raise NotImplementedError

    def stacked(self, weights: Tensor) -> Tensor:
        """The members' weights [K, *weight_shape] as this kind stores them."""
        return weights

    def transform(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def after(self, x: Tensor) -> Tensor:
        return x

    def forward(self, x: Tensor, trace: list | None = None) -> Tensor:
        """x [K, B, *inputs] -> [K, B, *out]; with `trace`, also appends (pre-activation, activation) of this layer."""
        h = self.transform(x)
        pool_first = trace is None and self.pools_first  # the same values at a quarter of the work: see pools_first
        if self.single:  # the common case: no gather, no scatter
            pre = self.norm(h) if self.normed[0] else h
            pre = pre + x if self.skips[0] else pre
            if pool_first:
                return self.acts[0](self.after(pre))
            out = self.acts[0](pre)
        else:
            pres, outs = [], []
            grouped = Regroup.apply(h, self.order, self.inverse).split(self.sizes)  # a slice per group
            inputs = Regroup.apply(x, self.order, self.inverse).split(self.sizes) if any(self.skips) else grouped
            for g, (act, hg, xg) in enumerate(zip(self.acts, grouped, inputs)):
                pre = self.norm(hg, getattr(self, f"norm_rows{g}")) if self.normed[g] else hg
                pres.append(pre + xg if self.skips[g] else pre)
                outs.append(act(self.after(pres[-1])) if pool_first else act(pres[-1]))
            out = Regroup.apply(torch.cat(outs), self.inverse, self.order)
            if pool_first:
                return out
            pre = Regroup.apply(torch.cat(pres), self.inverse, self.order) if trace is not None else None
        if trace is not None:
            trace.append((pre, out))
        return self.after(out)

    @torch.no_grad()
    def export(self, members: Sequence[MemberSpec], k: int) -> list[nn.Module]:
        """Member k's layer as torch's own modules, in order."""
        spec = members[k]
        body = [self.plain(k)]
        if self.number in spec.batch_norm:
            body.append(self.norm.export(self.norm_members.index(k), self.batch_norm))
        activation = build(spec.activation(self.number), self.units_dim)
        if self.number in spec.residual:
            return [Residual(nn.Sequential(*body), activation), *self.plain_after()]
        return [*body, activation, *self.plain_after()]

    def plain(self, k: int) -> nn.Module:
        """Member k's conv or Linear as torch's own module."""
        raise NotImplementedError

    def plain_after(self) -> list[nn.Module]:
        return []


class LinearLayer(Block):
    """Linear for every member: one batched matmul, x [K, B, in] @ W [K, in, out] + b."""

    def weight_shape(self) -> tuple[int, ...]:
        return (self.shape.out[0], self.shape.inputs[0])

    def stacked(self, weights: Tensor) -> Tensor:
        return weights.transpose(1, 2).contiguous()  # [K, in, out]: x @ W needs no transpose

    def transform(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)

    def plain(self, k: int) -> nn.Module:
        linear = nn.Linear(*self.weight.shape[1:])
        linear.weight.copy_(self.weight[k].T)
        linear.bias.copy_(self.bias[k])
        return linear


class ConvLayer(Block):
    """nn.Conv2d (stride 1) for every member, then its pooling: one grouped convolution over the members' channels
    side by side (x [K, B, C, H, W] as [B, K*C, H, W], groups=K), then one pooling of that [B, K*C, H, W].

    Both run channels-last (memory [B, H, W, K*C]), and what they hand on is a [K, B, C, H, W] view of it, so from
    one conv layer to the next nothing is copied but where the members were regrouped (mixed activations). On a
    CPU channels-last is what makes members folded into channels pay (timed alone: 16 members of model=cnn, batch
    32, one thread): a grouped convolution of NCHW tensors took 2.8 times as long forward and backward as
    channels-last (24.5 ms against 8.8 for the first layer; 16 plain nn.Conv2d 9.4 ms), and NCHW max pooling 3 to 7
    times (15.5 ms against 5.0); `python -m sherlocked.bench --model cnn` went from 0.82x to 1.23-1.34x the plain loop's
    speed (docs/benchmarks.md).
    """

    units_dim = -3  # channels of [..., C, H, W]
    batch_norm = nn.BatchNorm2d

    def __init__(self, members: Sequence[MemberSpec], layer: int):
        self.conv = members[0].convs[layer - 1]
        self.max_pooled = self.conv.pool == "max"
        super().__init__(members, layer)

    def weight_shape(self) -> tuple[int, ...]:
        return (self.conv.channels, self.shape.inputs[0], self.conv.kernel, self.conv.kernel)

    def transform(self, x: Tensor) -> Tensor:
        k, b, c, h, w = x.shape
        weight, bias = self.weight.flatten(0, 1), self.bias.flatten()  # [K*out, in, k, k], [K*out]
        weight = weight.contiguous(memory_format=torch.channels_last)
        # [B, K*C, H, W] channels-last: a view of what a ConvLayer hands on, else one copy (the data)
        x = x.permute(1, 3, 4, 0, 2).reshape(b, h, w, k * c).permute(0, 3, 1, 2)
        x = x.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, weight, bias, padding=self.conv.padding, groups=k)
        return y.view(b, k, *self.shape.pre).transpose(0, 1)  # [K, B, C, H, W], a view of channels-last memory

    def after(self, x: Tensor) -> Tensor:
        if self.conv.pool == "none":
            return x  # the next conv layer folds it, or the head flattens it
        pool = F.max_pool2d if self.conv.pool == "max" else F.avg_pool2d
        k, b, c, h, w = x.shape  # pooled as [B, K*C, H, W] channels-last: a view of transform's output, unless the
        folded = x.permute(1, 3, 4, 0, 2).reshape(b, h, w, k * c).permute(0, 3, 1, 2)  # members were regrouped
        y = pool(folded.contiguous(memory_format=torch.channels_last), POOL_SIZE)
        return y.view(b, k, *self.shape.out).transpose(0, 1)

    def plain(self, k: int) -> nn.Module:
        conv = nn.Conv2d(self.shape.inputs[0], self.conv.channels, self.conv.kernel, padding=self.conv.padding)
        conv.weight.copy_(self.weight[k])
        conv.bias.copy_(self.bias[k])
        return conv

    def plain_after(self) -> list[nn.Module]:
        pools = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
        return [pools[self.conv.pool](POOL_SIZE)] if self.conv.pool != "none" else []


class Population(nn.Module):
    """K networks of the same shape; forward maps [K, B, in] (or a shared [B, in]) to logits [K, B, out]. A CNN's
    inputs come flattened, as the data module holds them: it sees each as its (C, H, W) image."""

    def __init__(self, members: Sequence[MemberSpec]):
        super().__init__()
        first = members[0]
        if any((m.widths, m.convs, m.image) != (first.widths, first.convs, first.image) for m in members):
            raise ValueError("a population's members must share their layers' shapes")
        self.members = list(members)
        convs = len(first.convs)
        self.layers = nn.ModuleList(
            (ConvLayer if layer <= convs else LinearLayer)(members, layer) for layer in range(1, first.layers + 1)
        )
        self.convs = convs

    def __len__(self) -> int:
        return len(self.members)

    def forward(self, x: Tensor, trace: list | None = None) -> Tensor:
        """With `trace` (a list), every layer appends its (pre-activation, activation): [K, B, width] of a Linear
        layer, [K, B, C, H, W] of a conv layer (before its pooling)."""
        if x.dim() == 2:  # one batch seen by every member (evaluation)
            x = x.expand(len(self), *x.shape)
        if self.convs:
            x = x.view(*x.shape[:2], *self.members[0].image)
        for number, layer in enumerate(self.layers, start=1):
            x = layer(x, trace)
            if number == self.convs:
                x = x.flatten(2)  # into the head, in nn.Flatten's order
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
        """Member k as a plain nn.Sequential of torch's own modules (a skip: a Residual of them), with the same
        weights and outputs (in eval mode). A CNN's takes the inputs flattened, as the population does."""
        modules = [nn.Unflatten(1, self.members[k].image)] if self.convs else []
        for number, layer in enumerate(self.layers, start=1):
            modules += layer.export(self.members, k)
            if number == self.convs:
                modules.append(nn.Flatten())
        return nn.Sequential(*modules).to(self.layers[0].weight.device)
