"""Data sets loaded once per process as whole tensors on the device, split with a fixed seed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.errors import DataError
from hpsearch.spec import DataSpec

if TYPE_CHECKING:
    import torch

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
MNIST_CLASSES = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class Splits:
    """Train and validation tensors, already normalized and on the training device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    classes: tuple[str, ...]


_CACHE: dict[tuple[object, ...], Splits] = {}


def offline() -> bool:
    """True when downloads must not be tried (tests, air-gapped machines)."""
    return os.environ.get("HPSEARCH_OFFLINE", "") not in ("", "0")


def read_mnist(root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images (uint8, N x 28 x 28) and labels from root/MNIST/raw, downloading if allowed."""
    from torchvision.datasets import MNIST

    try:
        ds = MNIST(str(root), train=train, download=False)
    except RuntimeError:
        if offline():
            raise DataError(_missing_mnist(root, "downloads are off (HPSEARCH_OFFLINE)")) from None
        try:
            ds = MNIST(str(root), train=train, download=True)
        except Exception as exc:  # network errors come in many types
            reason = f"the download failed: {str(exc).splitlines()[0][:120]}"
            raise DataError(_missing_mnist(root, reason)) from None
    except Exception as exc:
        raise DataError(
            f"cannot read MNIST in {root / 'MNIST' / 'raw'}: {exc}; replace the damaged files"
        ) from None
    return ds.data, ds.targets


def _missing_mnist(root: Path, reason: str) -> str:
    """The one-line message for MNIST files that are absent."""
    return (
        f"MNIST not found in {root / 'MNIST' / 'raw'} and {reason}; put the four IDX files "
        f"({', '.join(MNIST_FILES)}) there, or point --data-dir / HPSEARCH_DATA_DIR at a folder "
        "that has them"
    )


def split_indices(n: int, spec: DataSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's fixed train and validation indices into the n training images."""
    import torch

    need = spec.train_size + spec.valid_size
    if need > n:
        raise DataError(
            f"data.train_size + data.valid_size = {need} but only {n} training images exist; "
            "lower them in the study file"
        )
    generator = torch.Generator().manual_seed(spec.split_seed)
    order = torch.randperm(n, generator=generator)
    return order[spec.valid_size : need], order[: spec.valid_size]


def mnist_splits(spec: DataSpec, root: Path, device: torch.device) -> Splits:
    """MNIST train/validation tensors for a study, loaded once per process and cached."""
    key = (str(root.resolve()), spec, str(device))
    if key not in _CACHE:
        _CACHE[key] = _load_mnist_splits(spec, root, device)
    return _CACHE[key]


def _load_mnist_splits(spec: DataSpec, root: Path, device: torch.device) -> Splits:
    """Read, split, flatten and normalize with the train split's own statistics."""
    images, labels = read_mnist(root, train=True)
    train_idx, valid_idx = split_indices(len(labels), spec)
    x = images.reshape(len(images), -1).float().div_(255.0)
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    return Splits(
        x_train=x[train_idx].to(device),
        y_train=labels[train_idx].to(device),
        x_valid=x[valid_idx].to(device),
        y_valid=labels[valid_idx].to(device),
        classes=MNIST_CLASSES,
    )
