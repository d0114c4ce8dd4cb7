"""A population's optimiser: torch.optim's own where its members share their settings, else one whose
learning rate, momentum and weight decay are each member's own.

    python -m sherlocked.train -m hydra/launcher=population model.optimizer.lr=0.1,0.03,0.01 seed=0,1

Member k of a population lives in row k of every stacked parameter (a batch-norm parameter holds only
the members with batch norm in that layer: its param group says which, `rows`). The member-wise
optimisers below apply torch.optim's update formulas, in torch's order of operations, with each
setting a tensor over the rows, so member k moves as torch.optim would move it alone (the
equivalence tests hold them to it).
"""

import functools
from collections.abc import Callable, Sequence

import torch
from hydra.utils import instantiate
from torch import Tensor

from sherlocked.spec.config import ConfigError

MEMBER_SETTINGS = ("lr", "momentum", "weight_decay")  # declared member keys in sherlocked/spec/config.py
# What each member-wise optimiser does not implement, with the only value it accepts.
UNSUPPORTED = {
    "torch.optim.SGD": {"dampening": 0, "nesterov": False, "maximize": False},
    "torch.optim.Adam": {"amsgrad": False, "maximize": False},
    "torch.optim.AdamW": {"amsgrad": False, "maximize": False},
}


class MemberWise(torch.optim.Optimizer):
    """The loop both member-wise optimisers share: each parameter with its rows' settings, on its device."""

    def __init__(self, groups: list[dict], settings: dict[str, Tensor]):
        super().__init__(groups, {})
        self.settings = settings  # each a tensor over the members
        self.on_device: dict[Tensor, list[Tensor]] = {}  # per parameter, made at its first step: no copy per step

    @torch.no_grad()
    def step(self, closure: Callable | None = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p not in self.on_device:
                    shape = (-1,) + (1,) * (p.dim() - 1)
                    rows = group["rows"].to(p.device)
                    self.on_device[p] = [v.to(p.device, p.dtype)[rows].view(shape) for v in self.settings.values()]
                self.update(p, self.state[p], *self.on_device[p])
        return loss

    def update(self, p: Tensor, state: dict, *settings: Tensor) -> None:
        raise NotImplementedError


class MemberSGD(MemberWise):
    """torch.optim.SGD (momentum, L2 weight decay) with each member's own lr, momentum and weight decay."""

    def __init__(self, groups: list[dict], lr: Tensor, momentum: Tensor, weight_decay: Tensor):
        super().__init__(groups, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    def update(self, p: Tensor, state: dict, lr: Tensor, momentum: Tensor, decay: Tensor) -> None:
        grad = p.grad.add(p * decay)  # torch: d_p.add(param, alpha=weight_decay)
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = grad.clone()  # torch: the first buffer is the gradient
        else:
            state["momentum_buffer"].mul_(momentum).add_(grad)
        p.sub_(lr * state["momentum_buffer"])  # torch: param.add_(buf, alpha=-lr)


class MemberAdam(MemberWise):
    """torch.optim.Adam (L2 weight decay) or AdamW (decoupled) with each member's own lr and weight decay."""

    def __init__(self, groups, lr: Tensor, weight_decay: Tensor, betas=(0.9, 0.999), eps=1e-8, decoupled=False):
        super().__init__(groups, {"lr": lr, "weight_decay": weight_decay})
        self.betas, self.eps, self.decoupled = tuple(betas), eps, decoupled

    def update(self, p: Tensor, state: dict, lr: Tensor, decay: Tensor) -> None:
        beta1, beta2 = self.betas
        grad = p.grad
        if self.decoupled:
            p.mul_(1 - lr * decay)  # torch AdamW: param.mul_(1 - lr * weight_decay)
        else:
            grad = grad.add(p * decay)  # torch Adam: grad.add(param, alpha=weight_decay)
        if not state:
            state["step"] = 0
            state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(p), torch.zeros_like(p)
        state["step"] += 1
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        bias_correction1 = 1 - beta1 ** state["step"]
        bias_correction2_sqrt = (1 - beta2 ** state["step"]) ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
        p.sub_(lr / bias_correction1 * (exp_avg / denom))  # torch: param.addcdiv_(m, denom, value=-step)


def population_optimizer(settings: Sequence[dict]) -> Callable:
    """optimizer(param_groups) for a population whose members have these model.optimizer configs (resolved)."""
    first = settings[0]
    if all(s == first for s in settings):
        return instantiate(first)  # torch.optim's own, fused where it says so
    target = first["_target_"]
    shared = {k: v for k, v in first.items() if k not in MEMBER_SETTINGS}
    for s in settings:
        if {k: v for k, v in s.items() if k not in MEMBER_SETTINGS} != shared:
            raise ConfigError(f"members of one population differ in model.optimizer beyond {MEMBER_SETTINGS}")
    if target not in UNSUPPORTED:
        raise ConfigError(f"members may differ in lr, momentum or weight_decay with SGD, Adam or AdamW, not {target}")
    for key, only in UNSUPPORTED[target].items():
        if first.get(key, only) != only:
            raise ConfigError(f"model.optimizer.{key}={first[key]!r} with members of different settings: not supported")

    def column(key: str) -> Tensor:
        return torch.tensor([float(s.get(key, 0.0)) for s in settings])

    if target == "torch.optim.SGD":
        decay = column("weight_decay")
        return functools.partial(MemberSGD, lr=column("lr"), momentum=column("momentum"), weight_decay=decay)
    return functools.partial(
        MemberAdam,
        lr=column("lr"),
        weight_decay=column("weight_decay"),
        betas=first.get("betas", (0.9, 0.999)),
        eps=first.get("eps", 1e-8),
        decoupled=target == "torch.optim.AdamW",
    )
