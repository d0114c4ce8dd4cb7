"""Tiny datasets in the real on-disk formats, and configs composed once and shrunk for the CPU."""

import gzip
import hashlib
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torchvision import datasets

from sherlocked.spec.config import CONFIG_DIR

CONF = str(CONFIG_DIR)
N_TRAIN, N_TEST = 250, 100

# One thread a process, here and in every process a test starts (they inherit the variables): the tests' networks
# are too small for a second thread to help, and where xdist's workers and the sweeps they start share a few cores,
# torch's OpenMP threads, spinning while they wait for each other, slowed every test many times over.
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
# Ray starts its workers at niceness 15: beside the other tests (at 0) they waited minutes for a core.
os.environ.setdefault("RAY_worker_niceness", "0")
# A sweep given no hydra.launcher.ray.address starts a Ray of its own, as on a machine without one: ray.init() would
# otherwise join the cluster another test (tests/test_ray_cluster.py), or another test run, has running here.
os.environ.setdefault("RAY_ADDRESS", "local")

# What every test run shrinks: two epochs, CPU, quiet (and tiny widths, see make_cfg).
SMALL = [
    "trainer=cpu",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "dataset.batch_size=16",
]
# The tests' tiny models beside the MLP's (model.widths=[784,16,12,10]): a CNN (2 and 3 channels, 3x3, max-pooled,
# then a Linear head of 10) and an MLP with identity skips around its hidden layers. Given after the MLP's widths.
CNN = ["model=cnn", "model.channels=[2,3]", "model.kernel=3", "model.widths=[10]"]
RESIDUAL = ["model.widths=[784,8,8,10]", "model.residual=true"]
MODELS = {"mlp": [], "cnn": CNN}


def checkout_on_path() -> str:
    """PYTHONPATH with the checkout first: the processes tests start import the helpers in tests/ (PACED) from it."""
    return os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))


def images(n: int, shape: tuple, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable uint8 images: noise plus a bright band whose position is the label."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    x = rng.integers(0, 60, size=(n, *shape), dtype=np.uint8)
    rows = shape[0] // 10
    for i, label in enumerate(labels):
        x[i, label * rows : (label + 1) * rows] = 250
    return x, labels.astype(np.uint8)


def write_idx(path: Path, array: np.ndarray) -> None:
    """The idx format MNIST ships in: magic (dtype 0x08 = ubyte, ndim), big-endian dims, raw bytes; gzipped."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def write_mnist_like(root: Path, cls) -> None:
    raw = root / cls.__name__ / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", N_TRAIN, 1), ("t10k", N_TEST, 2)):
        x, y = images(n, (28, 28), seed)
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", y)


def write_cifar(root: Path) -> dict[str, str]:
    """CIFAR-10's python pickles; returns their md5s (torchvision checks them)."""
    folder = root / datasets.CIFAR10.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {}
    batches = [(f"data_batch_{i}", N_TRAIN // 5, 10 + i) for i in range(1, 6)] + [("test_batch", N_TEST, 20)]
    for name, n, seed in batches:
        x, y = images(n, (32, 32, 3), seed)
        entry = {"data": x.transpose(0, 3, 1, 2).reshape(n, -1), "labels": y.tolist()}
        (folder / name).write_bytes(pickle.dumps(entry))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    md5["batches.meta"] = hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()
    return md5


@pytest.fixture(autouse=True)
def seeded():
    """Random test inputs are the same on every run and machine."""
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_mnist_like(root, datasets.MNIST)
    write_mnist_like(root, datasets.FashionMNIST)
    return root


@pytest.fixture
def cifar_root(tmp_path, monkeypatch) -> Path:
    """Tiny CIFAR-10 pickles; torchvision's CIFAR10 is told their md5s instead of the real ones."""
    md5 = write_cifar(tmp_path)
    cls = datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[name, md5[name]] for name, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[name, md5[name]] for name, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    return tmp_path


@pytest.fixture
def hydra_multirun(hydra_sweep_runner):
    """hydra_multirun(directory, overrides): `python -m sherlocked.train -m OVERRIDES` as a real in-process Hydra
    multirun into `directory` (its hydra.sweep.dir); a context manager, as hydra-core's runner is, which removes
    `directory` on leaving."""
    from sherlocked.records.job import population_task
    from sherlocked.training.engine import train_job

    def start(directory: Path, overrides: list[str]):
        runner = hydra_sweep_runner(  # as python -m sherlocked.train -m runs it
            calling_file=None,
            calling_module="sherlocked.train",
            task_function=train_job,
            config_path=CONF,
            config_name="train",
            overrides=overrides,
            temp_dir=directory,
        )
        # Hydra gets the runner as its task function (it calls train_job): sherlocked's task, like the CLI's main.
        return population_task(runner)

    return start


@pytest.fixture
def sweep(hydra_multirun, data_root):
    """sweep(directory, *overrides): a real in-process Hydra multirun of sherlocked.train on the tiny data."""
    return lambda directory, *overrides: hydra_multirun(
        directory, [*SMALL, "model.widths=[784,16,12,10]", f"dataset.root={data_root}", *overrides]
    )


@pytest.fixture
def make_cfg(data_root):
    """compose(overrides) of conf/train.yaml on the tiny data, shrunk for the CPU."""

    def make(*overrides: str, small: bool = True, widths: str = "[784,16,12,10]"):
        base = [*SMALL, f"model.widths={widths}", f"dataset.root={data_root}"] if small else []
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            return compose("train", overrides=[*base, *overrides])

    return make
