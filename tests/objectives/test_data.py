"""MNIST loading and the fixed seeded split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from hpsearch.errors import DataError
from hpsearch.objectives._data import (
    MNIST_FILES,
    _flat,
    mnist_splits,
    read_mnist,
    split_indices,
)
from hpsearch.spec import DataSpec


@pytest.fixture
def mnist_copy(tmp_path: Path, mnist_dir: Path) -> Path:
    """A private copy of the committed MNIST subset, safe to touch or damage."""
    shutil.copytree(mnist_dir / "MNIST", tmp_path / "data" / "MNIST")
    return tmp_path / "data"


def test_split_is_fixed_disjoint_and_sized() -> None:
    spec = DataSpec(train_size=700, valid_size=300, split_seed=4)
    train, valid = split_indices(1000, spec)
    again_train, again_valid = split_indices(1000, spec)
    assert torch.equal(train, again_train) and torch.equal(valid, again_valid)
    assert len(train) == 700 and len(valid) == 300
    assert not set(train.tolist()) & set(valid.tolist())
    other, _ = split_indices(1000, DataSpec(train_size=700, valid_size=300, split_seed=5))
    assert not torch.equal(train, other)


def test_split_larger_than_data_is_an_error() -> None:
    with pytest.raises(DataError, match="only 3000 training images exist"):
        split_indices(3000, DataSpec())


def test_subset_loads_with_train_statistics(mnist_dir: Path) -> None:
    splits = mnist_splits(DataSpec(train_size=2400, valid_size=600), mnist_dir, torch.device("cpu"))
    assert splits.x_train.shape == (2400, 784) and splits.x_valid.shape == (600, 784)
    assert splits.x_train.dtype == torch.float32 and splits.y_train.dtype == torch.int64
    assert abs(splits.x_train.mean().item()) < 1e-4
    assert splits.x_train.std().item() == pytest.approx(1.0, abs=1e-3)
    assert sorted(set(splits.y_valid.tolist())) == list(range(10))


def test_missing_files_offline_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_mnist(tmp_path, train=True)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value)
    assert "t10k-labels-idx1-ubyte" in str(info.value)


def test_damaged_files_are_not_called_missing(tmp_path: Path, mnist_dir: Path) -> None:
    shutil.copytree(mnist_dir / "MNIST", tmp_path / "MNIST")
    images = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:5000])  # cut off mid-file
    with pytest.raises(DataError, match=r"cannot read MNIST in .*replace the damaged files"):
        read_mnist(tmp_path, train=True)


def test_full_mnist_split_is_48000_12000(full_data_dir: Path) -> None:
    splits = mnist_splits(DataSpec(), full_data_dir, torch.device("cpu"))
    assert len(splits.y_train) == 48000 and len(splits.y_valid) == 12000
    images, labels = read_mnist(full_data_dir, train=False)
    assert images.shape == (10000, 28, 28)
    assert labels.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_decoded_mnist_is_what_torchvision_reads(mnist_dir: Path) -> None:
    from torchvision.datasets import MNIST

    for train in (True, False):
        reference = MNIST(str(mnist_dir), train=train)
        images, labels = read_mnist(mnist_dir, train=train)
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert torch.equal(images, reference.data) and torch.equal(labels, reference.targets)


def test_idx_header_and_counts_are_checked(mnist_copy: Path) -> None:
    raw = mnist_copy / "MNIST" / "raw"
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes((raw / "t10k-labels-idx1-ubyte").read_bytes())  # 1,000 for 3,000 images
    with pytest.raises(DataError, match="3000 images but train-labels-idx1-ubyte 1000 labels"):
        read_mnist(mnist_copy, train=True)
    labels.write_bytes(b"\x00\x00\x0d\x01" + labels.read_bytes()[4:])  # floats, not bytes
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte has no header of an IDX file"):
        read_mnist(mnist_copy, train=True)


def test_splits_normalize_as_before(mnist_dir: Path) -> None:
    """Only the used images are converted now; the tensors must stay bit-identical."""
    spec = DataSpec(train_size=500, valid_size=100, split_seed=3)
    splits = mnist_splits(spec, mnist_dir, torch.device("cpu"))
    images, labels = read_mnist(mnist_dir, train=True)
    train_idx, valid_idx = split_indices(len(labels), spec)
    x = _flat(images)  # the earlier way: every image, then index
    x = (x - x[train_idx].mean()) / x[train_idx].std()
    assert torch.equal(splits.x_train, x[train_idx]) and torch.equal(splits.x_valid, x[valid_idx])
    assert torch.equal(splits.y_train, labels[train_idx])


def test_every_idx_file_is_needed_offline(tmp_path: Path, mnist_dir: Path) -> None:
    shutil.copytree(mnist_dir / "MNIST", tmp_path / "MNIST")
    (tmp_path / "MNIST" / "raw" / MNIST_FILES[3]).unlink()  # a test-split file, for a train read
    with pytest.raises(DataError, match="downloads are off"):
        read_mnist(tmp_path, train=True)
