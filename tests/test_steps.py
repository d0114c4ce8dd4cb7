"""What a training step runs (issue 10): it never waits for its device: no op in it needs a device value on
the host (on a GPU each one would stall the step until the GPU caught up); and a layer's kernels do not grow
with its activation groups beyond the activations. Checked on a CPU by the ops each step dispatches, from
its start to its end: forward, loss, backward, optimiser step, logging. (A copy to the host, .cpu() or
.tolist(), dispatches nothing on a CPU: the module keeps those at an epoch's end.)"""

import collections
import itertools

import lightning as L
import pytest
import torch
from test_module import MIXED, fit, tensorboard
from torch.utils._python_dispatch import TorchDispatchMode

from sherlocked.spec.checks import MemberSpec
from sherlocked.training.module import PopulationModule, member_losses
from sherlocked.training.optimizers import population_optimizer
from sherlocked.training.population import Population

# Ops that hand a value to the host (.item(), float(t), bool(t), `if t:`), or whose output's size depends
# on values, so the host must wait for them to know it (nonzero, boolean-mask indexing, unique, ...).
WAITING = {"_local_scalar_dense", "item", "is_nonzero", "nonzero", "masked_select", "_unique2", "unique_dim"}
WAITING |= {"unique_consecutive", "repeat_interleave", "equal"}


class HostWaits(TorchDispatchMode):
    """Records the ops dispatched while it is on that would make the host wait."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in WAITING or (name in ("index", "index_put", "index_put_") and masked(args[1])):
            self.ops.append(name)
        return func(*args, **(kwargs or {}))


def masked(indices) -> bool:
    """Whether an index op's indices hold a boolean mask (its result's size depends on the mask's values)."""
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)


class EveryStep(L.Callback):
    """On from a step's start (before the module's hook) to its end (before the module's: diagnostics
    follow a step, they are no part of it)."""

    def __init__(self):
        self.watch, self.steps, self.waits = None, 0, []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.watch = HostWaits().__enter__()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.watch.__exit__(None, None, None)
        self.steps += 1
        self.waits += self.watch.ops


def optimiser(name: str):
    if name == "fused SGD":  # torch.optim's own: every member shares its settings
        return population_optimizer(
            [{"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.05, "momentum": 0.5, "fused": True}] * 3
        )
    settings = [
        {"_target_": "torch.optim.SGD", "lr": lr, "momentum": 0.5, "weight_decay": 0.0} for lr in (0.1, 0.01, 0.05)
    ]
    return population_optimizer(settings)


@pytest.mark.parametrize("name", ["fused SGD", "member-wise SGD"])
def test_no_training_step_makes_the_host_wait_for_the_device(data_root, tmp_path, name):
    """Groups of activations, batch norm on some members' layers, each member's TensorBoard logging,
    the diagnostics between steps: 2 epochs of 16 steps."""
    trackers = tensorboard(tmp_path, len(MIXED))
    diagnostics = {"interval": 4, "probe_size": 32, "histograms": False}
    watched = EveryStep()
    fit(MIXED, data_root, trackers=trackers, diagnostics=diagnostics, optimizer=optimiser(name), callbacks=[watched])
    assert watched.steps == 32
    assert watched.waits == []


def test_the_watch_sees_what_makes_the_host_wait_in_a_step(data_root, monkeypatch):
    """The watch itself: ops that wait, in a step's training_step and in its backward."""

    def waiting_step(module, index, batch_idx):
        loss = training_step(module, index, batch_idx)
        float(loss.detach())  # .item()
        if batch_idx == 0 and module.current_epoch == 0:  # a boolean mask in every step's backward
            module.net.layers[0].weight.register_hook(lambda grad: grad + 0 * grad[grad > 0].sum())
        return loss

    training_step = PopulationModule.training_step
    monkeypatch.setattr(PopulationModule, "training_step", waiting_step)
    watched = EveryStep()
    fit(MIXED[:1], data_root, callbacks=[watched])
    assert watched.waits.count("_local_scalar_dense") == 32 and watched.waits.count("index") == 32


class Ops(TorchDispatchMode):
    """Counts the ops dispatched while it is on, by name."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def test_a_layer_of_several_activation_groups_regroups_its_members_with_one_gather_each_way():
    """Few kernels per layer, however many groups: no gather per group and no scatter into zeros in the
    backward (indexing's own gradient), only the regrouping and its return, forward and backward."""
    triples = list(itertools.product(("relu", "tanh", "sigmoid", "selu"), repeat=3))  # 4 groups in every layer
    net = Population([MemberSpec((784, 16, 8, 10), triple, seed=k) for k, triple in enumerate(triples)])
    x, targets = torch.randn(len(triples), 4, 784), torch.randint(0, 10, (len(triples), 4))
    with Ops() as ops:
        member_losses(net, x, targets).sum().backward()
    assert ops.counts["index_select"] == 3 * 4  # per layer: regroup and return, forward and backward
    assert ops.counts["index"] == ops.counts["index_put"] == ops.counts["new_zeros"] == 0
    assert ops.counts["baddbmm"] == 3 and sum(ops.counts[a] for a in ("relu", "tanh", "sigmoid", "elu")) == 3 * 4
