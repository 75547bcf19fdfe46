"""Data sets loaded once per process as whole tensors on the device, split with a fixed seed."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import DataError, arg
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
MNIST_CACHE_VERSION = 1  # raise when what read_mnist caches changes


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
    """MNIST images (uint8, N x 28 x 28) and labels (int64) from root/MNIST/raw, cached decoded."""
    raw = root / "MNIST" / "raw"
    if not all((raw / name).is_file() for name in MNIST_FILES):
        download_mnist(root)
    images, labels = (raw / name for name in (MNIST_FILES[:2] if train else MNIST_FILES[2:]))
    key = content_key(f"mnist v{MNIST_CACHE_VERSION}", [(p.name, p) for p in (images, labels)])
    path = cache_dir() / f"mnist-{'train' if train else 'test'}-{key}.pt"
    cached = read_cache(path, "MNIST", _valid_mnist)
    if cached is None:
        cached = dict(zip(("images", "labels"), decode_mnist(images, labels), strict=True))
        write_cache(cached, path, "MNIST")
    return cached["images"], cached["labels"]


def decode_mnist(images: Path, labels: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's IDX files as torchvision's MNIST reads them: uint8 images, int64 labels."""
    x, y = read_idx(images, 3), read_idx(labels, 1).long()
    if len(x) != len(y):
        raise DataError(
            f"cannot read MNIST in {images.parent}: {images.name} has {len(x)} images but "
            f"{labels.name} {len(y)} labels; replace the damaged files"
        )
    return x, y


def download_mnist(root: Path) -> None:
    """Fetch the four IDX files with torchvision (imported only here: it costs seconds)."""
    if offline():
        raise DataError(_missing_mnist(root, "downloads are off (HPSEARCH_OFFLINE)"))
    from torchvision.datasets import MNIST

    try:
        MNIST(str(root), train=True, download=True)
    except Exception as exc:  # network errors come in many types
        reason = f"the download failed: {str(exc).splitlines()[0][:120]}"
        raise DataError(_missing_mnist(root, reason)) from None


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """An IDX file of unsigned bytes as torchvision reads it, decoded with numpy.

    torchvision's reader is no faster, and importing torchvision costs seconds before the first
    trial (its models load torch._dynamo, which torch.optim otherwise loads only when first used).
    """
    import numpy as np
    import torch

    with path.open("rb") as file:
        header = file.read(4 + 4 * ndim)
        payload = np.fromfile(file, dtype=np.uint8)
    if len(header) < 4 + 4 * ndim or header[:4] != bytes((0, 0, 8, ndim)):
        problem = f"no header of an IDX file of {ndim}-dimensional unsigned bytes"
    else:
        shape = [int(d) for d in np.frombuffer(header, dtype=">u4", offset=4)]
        if payload.size == math.prod(shape):
            return torch.from_numpy(payload.reshape(shape))
        problem = f"{payload.size} bytes of data where its header promises {math.prod(shape)}"
    raise DataError(
        f"cannot read MNIST in {path.parent}: {path.name} has {problem}; replace the damaged files"
    )


def _valid_mnist(cached: object) -> bool:
    """A cache file holds what read_mnist stores: uint8 images and as many int64 labels."""
    import torch

    if not isinstance(cached, dict) or set(cached) != {"images", "labels"}:
        return False
    images, labels = cached["images"], cached["labels"]
    return (
        isinstance(images, torch.Tensor)
        and isinstance(labels, torch.Tensor)
        and images.dtype == torch.uint8
        and images.dim() == 3
        and labels.dtype == torch.int64
        and labels.shape == images.shape[:1]
    )


def _missing_mnist(root: Path, reason: str) -> str:
    """The one-line message for MNIST files that are absent."""
    return (
        f"MNIST not found in {root / 'MNIST' / 'raw'} and {reason}; put the four IDX files "
        f"({', '.join(MNIST_FILES)}) there, or point {arg('data_dir')} / HPSEARCH_DATA_DIR at a "
        "folder that has them"
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
    x_train, x_valid = _flat(images[train_idx]), _flat(images[valid_idx])  # only what is used
    mean, std = x_train.mean(), x_train.std()
    return Splits(
        x_train=((x_train - mean) / std).to(device),
        y_train=labels[train_idx].to(device),
        x_valid=((x_valid - mean) / std).to(device),
        y_valid=labels[valid_idx].to(device),
        classes=MNIST_CLASSES,
    )


# ---------------------------------------------------------------- image folders (flowers, any)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


@dataclass(frozen=True)
class ImageSet:
    """Every image of an ImageFolder tree, decoded once, with the study's stratified split."""

    images: torch.Tensor  # uint8, N x 3 x S x S
    labels: torch.Tensor  # int64, N
    classes: tuple[str, ...]
    train_idx: torch.Tensor
    valid_idx: torch.Tensor
    test_idx: torch.Tensor


def cache_dir() -> Path:
    """Where decoded image tensors are cached: HPSEARCH_CACHE_DIR or ~/.cache/hpsearch."""
    return Path(os.environ.get("HPSEARCH_CACHE_DIR") or Path.home() / ".cache" / "hpsearch")


def scan_image_folder(root: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """Class names and (file, label) pairs of an ImageFolder tree, with clear errors."""
    hint = f"put one sub-folder of images per class there, or point {arg('data_dir')} elsewhere"
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; {hint}")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and d.name[0] != "."))
    if not classes:
        raise DataError(f"image folder {root} has no class sub-folders; {hint}")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(
                f"class folder {root / name} has no images (.jpg, .jpeg, .png); add images "
                "or remove the folder"
            )
        files += [(path, label) for path in found]
    return classes, files


def image_cache_key(files: list[tuple[Path, int]], root: Path, size: int) -> str:
    """Changes when any file is added, removed, resized, touched or relabelled, or the size."""
    return content_key(
        f"v2 size={size}", [(f"{path.relative_to(root)}|{label}", path) for path, label in files]
    )


def content_key(header: str, entries: Iterable[tuple[str, Path]]) -> str:
    """A cache key from a format header and each (name, file) with the file's size and mtime."""
    digest = hashlib.sha256(header.encode())
    for name, path in entries:
        stat = path.stat()
        digest.update(f"{name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def read_cache(path: Path, what: str, valid: Callable[[object], bool]) -> Any:
    """A decoded cache file's contents; None when absent, or damaged (with a note: rebuilt)."""
    import torch

    if not path.is_file():
        return None
    try:
        cached = torch.load(path, weights_only=True)
    except Exception as exc:  # a cut-off or foreign file raises one of several types
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    else:
        if valid(cached):
            return cached
        reason = "not what hpsearch stores there"
    print(
        f"note: decoded {what} cache {path} is unreadable ({reason}); rebuilding it",
        file=sys.stderr,
    )
    return None


def write_cache(contents: object, path: Path, what: str) -> None:
    """Store decoded tensors atomically (a concurrent worker sees a whole file or none)."""
    import torch

    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(contents, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        reason = str(exc).splitlines()[0][:120]
        print(
            f"note: cannot write decoded {what} cache {path} ({reason}); it is decoded again "
            "next time unless HPSEARCH_CACHE_DIR names a writable folder",
            file=sys.stderr,
        )


def _valid_images(cached: object, count: int) -> bool:
    """An image cache file holds uint8 N x 3 x S x S images, one per file."""
    import torch

    return (
        isinstance(cached, torch.Tensor)
        and cached.dtype == torch.uint8
        and cached.dim() == 4
        and len(cached) == count
    )


def decode_images(files: list[tuple[Path, int]], size: int) -> torch.Tensor:
    """Decode every image to RGB, resized and centre-cropped to size x size (antialiased)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    out = np.empty((len(files), size, size, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as image:
                fitted = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
        except Exception as exc:  # PIL raises several types for damaged files
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise DataError(f"cannot read image {path}: {reason}; remove or replace it") from None
        out[i] = np.asarray(fitted)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def load_image_set(spec: DataSpec, root: Path) -> ImageSet:
    """An ImageFolder tree as tensors, decoded once and cached under a content-based key."""
    import torch

    folder = root / spec.folder
    classes, files = scan_image_folder(folder)
    key = image_cache_key(files, folder, spec.image_size)
    path = cache_dir() / f"{spec.folder.replace('/', '_')}-{key}.pt"
    images = read_cache(path, "image", lambda cached: _valid_images(cached, len(files)))
    if images is None:
        images = decode_images(files, spec.image_size)
        write_cache(images, path, "image")
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    train, valid, test = stratified_split(labels, spec, classes)
    return ImageSet(images, labels, classes, train, valid, test)


def stratified_split(
    labels: torch.Tensor, spec: DataSpec, classes: tuple[str, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class seeded shuffle into train/validation/test with the spec's fractions."""
    import torch

    generator = torch.Generator().manual_seed(spec.split_seed)
    parts: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]] = ([], [], [])
    for label in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = round(len(members) * spec.test_fraction)
        n_valid = max(1, round(len(members) * spec.valid_fraction))
        if len(members) - n_test - n_valid < 1:
            name = classes[label] if classes else str(label)
            raise DataError(
                f"class '{name}' has only {len(members)} images, too few to split; add images"
            )
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test : n_test + n_valid])
        parts[0].append(members[n_test + n_valid :])
    train, valid, test = (torch.sort(torch.cat(p)).values for p in parts)
    return train, valid, test


def image_splits(spec: DataSpec, root: Path, device: torch.device) -> Splits:
    """An image folder's train/validation tensors, normalized per channel with train statistics."""
    key = ("images", str(root.resolve()), spec, str(device))
    if key not in _CACHE:
        data = load_image_set(spec, root)
        x_train, x_valid = normalized(data, (data.train_idx, data.valid_idx))
        _CACHE[key] = Splits(
            x_train=x_train.to(device),
            y_train=data.labels[data.train_idx].to(device),
            x_valid=x_valid.to(device),
            y_valid=data.labels[data.valid_idx].to(device),
            classes=data.classes,
        )
    return _CACHE[key]


def normalized(data: ImageSet, parts: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """Float images of each index set, scaled with the train split's per-channel mean and std."""
    train = data.images[data.train_idx].float().div_(255.0)
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True)
    return [(data.images[idx].float().div_(255.0) - mean) / std for idx in parts]


def image_test_split(
    spec: DataSpec, root: Path, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out test images of a folder (normalized with train statistics) and labels."""
    data = load_image_set(spec, root)
    (x_test,) = normalized(data, (data.test_idx,))
    return x_test.to(device), data.labels[data.test_idx].to(device)


def mnist_test(
    spec: DataSpec, root: Path, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The 10,000 MNIST test images, normalized with the study's train-split statistics."""
    train_images, labels = read_mnist(root, train=True)
    train_idx, _ = split_indices(len(labels), spec)
    x_train = _flat(train_images[train_idx])
    mean, std = x_train.mean(), x_train.std()
    images, targets = read_mnist(root, train=False)
    return ((_flat(images) - mean) / std).to(device), targets.to(device)


def _flat(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x 28 x 28 images as float N x 784 in [0, 1]; train and test share it."""
    return images.reshape(len(images), -1).float().div_(255.0)


def data_files(spec: DataSpec, root: Path) -> list[Path]:
    """The files a study's training reads (for the manifest's data hash)."""
    if spec.dataset != "mnist":  # a folder of class sub-folders
        return [path for path, _ in scan_image_folder(root / spec.folder)[1]]
    raw = root / "MNIST" / "raw"
    return [raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"]
