"""The LightningModule: a Population trained with the sum of its members' losses.

Summing the members' mean cross-entropies gives each member exactly the gradient it
would get alone, so SGD (with momentum) moves each member exactly as a solo run would.
A member whose loss turns NaN/inf is marked diverged and drops out of the sum.
"""

import time
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

from sherlocked.records.results import EPOCH_CURVES
from sherlocked.runtime import phases
from sherlocked.spec.checks import MemberSpec
from sherlocked.training import compiled
from sherlocked.training.diagnostics import grad_norms, measure
from sherlocked.training.population import Population
from sherlocked.training.trackers import Tracker, each


def sample_losses(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy per member and sample: logits [K, B, C], targets [K, B] -> [K, B]."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(targets.shape)


def member_losses(net: Population, x: Tensor, targets: Tensor) -> Tensor:
    """Each member's mean training loss over its batch: x [K, B, in], targets [K, B] -> [K]."""
    return sample_losses(net(x), targets).mean(1)


class MemberMean(Metric):
    """Mean over all samples seen, kept separately per member: update([K, B]) ... compute() -> [K]."""

    def __init__(self, members: int):
        super().__init__()
        self.add_state("total", torch.zeros(members, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, values: Tensor) -> None:
        self.total += values.sum(1, dtype=torch.float64)
        self.count += values.shape[1]

    def compute(self) -> Tensor:
        return (self.total / self.count).float()


class PopulationModule(L.LightningModule):
    def __init__(
        self,
        members: Sequence[MemberSpec],
        optimizer: Callable,
        trackers: Mapping[str, Tracker] | None = None,
        diagnostics: Mapping | None = None,
        compile_mode: str | None = None,
    ):
        """trackers: each member's runs, by the tracker's name (sherlocked.training.trackers);
        diagnostics: None, or interval (steps), probe_size (test images), histograms (bool);
        compile_mode: torch.compile's mode for the training loss (sherlocked.training.compiled), None for eager."""
        super().__init__()
        self.net = Population(members)
        self.member_losses = compiled.Step(member_losses, compile_mode)
        self.optimizer = optimizer
        self.trackers = dict(trackers or {})
        self.diagnostics = diagnostics
        self.diagnostics_history: list[dict[str, list[float]]] = []
        k = len(members)
        self.test_acc, self.test_loss = MemberMean(k), MemberMean(k)
        self.register_buffer("alive", torch.ones(k, dtype=torch.bool), persistent=False)
        self.register_buffer("train_loss_sum", torch.zeros(k), persistent=False)
        self.train_steps = 0
        self.history: dict[str, list] = {"test_acc": [], "test_loss": [], "train_loss": []}
        self.queued: list[tuple[int, dict[str, Tensor]]] = []  # (step, per-member values) for the trackers

    @property
    def data(self):
        return self.trainer.datamodule

    def configure_optimizers(self):
        # param groups that say which member each row is (sherlocked.training.optimizers): torch.optim's ignore that
        return self.optimizer(self.net.param_groups())

    def training_step(self, index: Tensor, batch_idx: int) -> Tensor:
        losses = self.member_losses(self.net, self.data.train_x[index], self.data.train_y[index])
        self.alive &= torch.isfinite(losses)
        kept = torch.where(self.alive, losses, 0.0)  # a diverged member stops steering anything
        self.train_loss_sum += kept.detach()
        self.train_steps += 1
        if self.trackers and self.global_step % self.trainer.log_every_n_steps == 0:
            self._log_members({"loss/train": losses.detach()}, self.global_step)
        return kept.sum()

    def on_fit_start(self) -> None:
        if self.diagnostics:  # fixed for the whole run, so values compare across steps and members
            self.probe = self.data.test_x[: self.diagnostics["probe_size"]]

    def _diagnosing_after(self, batch_idx: int) -> bool:
        """Diagnostics follow this step: every `interval` steps and after an epoch's last step."""
        every = (self.global_step + 1) % self.diagnostics["interval"] == 0
        return every or batch_idx == self.trainer.num_training_batches - 1

    def on_before_optimizer_step(self, optimizer) -> None:
        # Lightning frees the gradients before the next hooks run: take their norms now, on the steps that need them.
        if self.diagnostics and self._diagnosing_after(self.batch_idx):
            self.last_grad_norms = grad_norms(self.net)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        self.batch_idx = batch_idx
        self.step_start = time.process_time()
        if self.member_losses.first_step_s is None:
            self.first_step_start = time.perf_counter()

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        # Diagnosed as the step ends, not at the batch's end (callbacks come first there): a population saved at a
        # step's end (checkpoints.PopulationCheckpoint, on a stop signal) holds everything its steps logged.
        step = self.global_step + 1  # Lightning counts the step once this hook returns
        if self.diagnostics and step % self.diagnostics["interval"] == 0:
            self._diagnose(step, epoch_end=False)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        phases.cpu["steps"] += time.process_time() - self.step_start  # forward, backward, optimizer step
        if self.member_losses.first_step_s is None:  # where torch.compile compiles, if asked to
            self.member_losses.first_step_took(time.perf_counter() - self.first_step_start)

    def _diagnose(self, step: int, epoch_end: bool) -> None:
        values, trace = measure(self.net, self.probe)
        values.update(self.last_grad_norms)
        self._log_members({f"mechanism/{name}": value for name, value in values.items()}, step)
        if not epoch_end:
            return
        self.diagnostics_history.append({name: value.tolist() for name, value in values.items()})
        if self.diagnostics["histograms"]:
            for number, (pre, post) in enumerate(trace, start=1):
                pre, post = pre.cpu(), post.cpu()
                tag = f"mechanism/layer{number}"
                each(self.trackers, "histogram", f"{tag}/pre_activation", pre, step)
                each(self.trackers, "histogram", f"{tag}/activation", post, step)

    def on_validation_batch_start(self, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.step_start = time.process_time()

    def on_validation_batch_end(self, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        phases.cpu["steps"] += time.process_time() - self.step_start

    def validation_step(self, index: Tensor, batch_idx: int) -> None:
        targets = self.data.test_y[index].expand(len(self.net), -1)
        logits = self.net(self.data.test_x[index])
        self.test_acc.update((logits.argmax(-1) == targets).float())
        self.test_loss.update(sample_losses(logits, targets))

    def on_validation_epoch_end(self) -> None:
        # torchmetrics squeezes a one-element result: a population of one comes back 0-d.
        acc, loss = self.test_acc.compute().reshape(-1), self.test_loss.compute().reshape(-1)
        self.test_acc.reset()
        self.test_loss.reset()
        if self.trainer.sanity_checking:
            return
        self.history["test_acc"].append(acc.tolist())
        self.history["test_loss"].append(loss.tolist())
        self._log_members({EPOCH_CURVES["test_acc"]: acc, EPOCH_CURVES["test_loss"]: loss}, self.current_epoch + 1)
        self.log("test_acc", acc.mean(), prog_bar=True, logger=False)

    def on_train_epoch_end(self) -> None:
        loss = torch.where(self.alive, self.train_loss_sum / max(self.train_steps, 1), torch.nan)
        self.history["train_loss"].append(loss.tolist())
        self._log_members({EPOCH_CURVES["train_loss"]: loss}, self.current_epoch + 1)
        self.train_loss_sum.zero_()
        self.train_steps = 0
        if self.diagnostics:
            self._diagnose(self.global_step, epoch_end=True)
        self._write_logs()  # once an epoch: the steps between never wait for the host

    def _log_members(self, metrics: dict[str, Tensor], step: int) -> None:
        """Queue per-member values [K] for each member's runs; they stay on the device until written
        (copies: a CUDA graph reuses its outputs' memory at its next replay)."""
        if self.trackers:
            self.queued.append((step, {name: value.detach().float().clone() for name, value in metrics.items()}))

    def _write_logs(self) -> None:
        """Write the queued values: one transfer from the device for all of them, so no step waits on the host."""
        if not self.queued:
            return
        values = iter(torch.stack([v for _, metrics in self.queued for v in metrics.values()]).tolist())
        rows = [(step, dict(zip(metrics, values))) for step, metrics in self.queued]
        self.queued.clear()
        each(self.trackers, "log", rows)

    def on_fit_end(self) -> None:
        self._write_logs()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """What a resumed run needs besides the weights: the curves so far, who diverged, the epoch's running loss
        (saved mid-epoch, on a stop signal), and each tracker's state (everything logged written out first, and
        how it goes on: sherlocked.training.trackers)."""
        self._write_logs()
        states = each(self.trackers, "state")
        checkpoint["population"] = {
            "alive": self.alive.cpu(),
            "history": self.history,
            "diagnostics_history": self.diagnostics_history,
            "train_loss_sum": self.train_loss_sum.cpu(),
            "train_steps": self.train_steps,
            "epochs": len(self.history["test_acc"]),  # epochs done (Lightning's "epoch" is the one running)
            "trackers": states,
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["population"]
        self.alive.copy_(state["alive"])
        self.history, self.diagnostics_history = state["history"], state["diagnostics_history"]
        if "train_steps" in state:  # saved mid-epoch (checkpoints before it were saved at an epoch's end only)
            self.train_loss_sum.copy_(state["train_loss_sum"])
            self.train_steps = state["train_steps"]

    def member_history(self, k: int) -> dict[str, list[float]]:
        """Per-epoch curves of member k."""
        return {name: [epoch[k] for epoch in curve] for name, curve in self.history.items()}

    def member_diagnostics(self, k: int) -> dict[str, list[float]]:
        """Per-epoch-end diagnostics of member k (empty without diagnostics)."""
        names = self.diagnostics_history[0] if self.diagnostics_history else {}
        return {name: [epoch[name][k] for epoch in self.diagnostics_history] for name in names}
