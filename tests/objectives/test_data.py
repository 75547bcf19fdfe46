"""MNIST loading, its decoded cache, and the fixed seeded split."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from hpsearch.errors import DataError
from hpsearch.objectives._data import (
    MNIST_FILES,
    _flat,
    load_image_set,
    mnist_splits,
    read_mnist,
    split_indices,
)
from hpsearch.spec import DataSpec


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A decoded-data cache folder of this test's own, so its files can be counted."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(folder))
    return folder


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


def test_decoded_mnist_is_what_torchvision_reads(cache: Path, mnist_dir: Path) -> None:
    from torchvision.datasets import MNIST

    for train in (True, False):
        reference = MNIST(str(mnist_dir), train=train)
        for _ in ("decoded", "from the cache"):
            images, labels = read_mnist(mnist_dir, train=train)
            assert images.dtype == torch.uint8 and labels.dtype == torch.int64
            assert torch.equal(images, reference.data) and torch.equal(labels, reference.targets)
    assert len(list(cache.glob("mnist-*.pt"))) == 2  # one per split


def test_mnist_cache_is_built_once_reused_and_rebuilt_on_change(
    cache: Path, mnist_copy: Path
) -> None:
    images, labels = read_mnist(mnist_copy, train=True)
    (built,) = cache.glob("mnist-train-*.pt")
    # Reused: what the cache holds is what a later read returns, the IDX files unread.
    torch.save({"images": images[:10].clone(), "labels": labels[:10].clone()}, built)
    assert len(read_mnist(mnist_copy, train=True)[1]) == 10
    # Rebuilt once an IDX file changes (here only touched), into a new entry.
    touched = mnist_copy / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    again, again_labels = read_mnist(mnist_copy, train=True)
    assert torch.equal(again, images) and torch.equal(again_labels, labels)
    assert len(list(cache.glob("mnist-train-*.pt"))) == 2
    assert not list(cache.glob("*.tmp"))  # written through a temporary file, then renamed


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 cut off", None])
def test_damaged_mnist_cache_is_rebuilt_with_a_note(
    cache: Path, mnist_dir: Path, capsys: pytest.CaptureFixture[str], damage: bytes | None
) -> None:
    images, labels = read_mnist(mnist_dir, train=False)
    (cached,) = cache.glob("mnist-test-*.pt")
    if damage is None:  # a whole file, but not what hpsearch stores
        torch.save({"images": images.float()}, cached)
    else:
        cached.write_bytes(damage)
    capsys.readouterr()
    again, again_labels = read_mnist(mnist_dir, train=False)
    assert torch.equal(again, images) and torch.equal(again_labels, labels)
    err = capsys.readouterr().err
    assert err.startswith("note: decoded MNIST cache") and "rebuilding it" in err
    assert err.count("\n") == 1
    read_mnist(mnist_dir, train=False)
    assert capsys.readouterr().err == ""  # the rebuilt file is whole


def test_damaged_image_cache_is_rebuilt_with_a_note(
    cache: Path, mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = DataSpec(dataset="flowers", image_size=16)
    images = load_image_set(spec, mnist_dir).images
    (cached,) = cache.glob("flowers-*.pt")
    cached.write_bytes(cached.read_bytes()[:1000])
    capsys.readouterr()
    assert torch.equal(load_image_set(spec, mnist_dir).images, images)
    assert capsys.readouterr().err.startswith("note: decoded image cache")


def test_unwritable_cache_folder_still_reads_with_a_note(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mnist_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("HPSEARCH_CACHE_DIR", str(tmp_path / "a-file" / "cache"))
    images, _ = read_mnist(mnist_dir, train=False)
    assert images.shape == (1000, 28, 28)
    err = capsys.readouterr().err
    assert err.startswith("note: cannot write decoded MNIST cache") and err.count("\n") == 1
    assert "HPSEARCH_CACHE_DIR" in err


def test_idx_header_and_counts_are_checked(cache: Path, mnist_copy: Path) -> None:
    raw = mnist_copy / "MNIST" / "raw"
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes((raw / "t10k-labels-idx1-ubyte").read_bytes())  # 1,000 for 3,000 images
    with pytest.raises(DataError, match="3000 images but train-labels-idx1-ubyte 1000 labels"):
        read_mnist(mnist_copy, train=True)
    labels.write_bytes(b"\x00\x00\x0d\x01" + labels.read_bytes()[4:])  # floats, not bytes
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte has no header of an IDX file"):
        read_mnist(mnist_copy, train=True)
    assert not list(cache.glob("mnist-*.pt"))  # nothing cached from damaged files


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
