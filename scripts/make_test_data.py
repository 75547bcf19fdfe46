"""Write the small real subsets the tests use (tests/data), from the full data.

- tests/data/MNIST/raw: a seeded sample of MNIST as IDX files (3,000 train, 1,000 test images).
- tests/data/flowers/<class>: a seeded sample of the flower photos (40 per class), copied as is.

Usage: python scripts/make_test_data.py [--source ../shared/data] [--train 3000] [--test 1000]
       [--flowers-per-class 40]
The subsets are seeded random samples, so re-running this gives byte-identical files.
"""

from __future__ import annotations

import argparse
import shutil
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format) as a uint8 array of its declared shape."""
    data = path.read_bytes()
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file that torchvision's MNIST reader accepts."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def subset(source: Path, dest: Path, prefix: str, count: int, seed: int) -> None:
    """Copy a seeded sample of `count` images and their labels."""
    images = read_idx(source / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(source / f"{prefix}-labels-idx1-ubyte")
    pick = np.sort(np.random.default_rng(seed).choice(len(labels), size=count, replace=False))
    write_idx(dest / f"{prefix}-images-idx3-ubyte", images[pick])
    write_idx(dest / f"{prefix}-labels-idx1-ubyte", labels[pick])


def flowers_subset(source: Path, dest: Path, per_class: int, seed: int) -> None:
    """Copy a seeded sample of each class folder's images."""
    rng = np.random.default_rng(seed)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.jpg"))
        pick = sorted(rng.choice(len(files), size=per_class, replace=False))
        target = dest / folder.name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for i in pick:
            shutil.copyfile(files[i], target / files[i].name)


def main() -> None:
    """Parse arguments and write both subsets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--flowers-per-class", type=int, default=40)
    args = parser.parse_args()
    source = args.source / "MNIST" / "raw"
    dest = ROOT / "tests" / "data" / "MNIST" / "raw"
    dest.mkdir(parents=True, exist_ok=True)
    subset(source, dest, "train", args.train, seed=0)
    subset(source, dest, "t10k", args.test, seed=1)
    print(f"wrote {args.train} train and {args.test} test images to {dest}")
    flowers = ROOT / "tests" / "data" / "flowers"
    flowers_subset(args.source / "flowers", flowers, args.flowers_per_class, seed=2)
    print(f"wrote {args.flowers_per_class} images per class to {flowers}")


if __name__ == "__main__":
    main()
