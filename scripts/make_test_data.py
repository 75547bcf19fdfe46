"""Write the small real MNIST subset that the tests use (tests/data/MNIST/raw), from full data.

Usage: python scripts/make_test_data.py [--source ../shared/data] [--train 3000] [--test 1000]
The subset is a seeded random sample, so re-running this gives byte-identical files.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    """Parse arguments and write both subsets."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    args = parser.parse_args()
    source = args.source / "MNIST" / "raw"
    dest = ROOT / "tests" / "data" / "MNIST" / "raw"
    dest.mkdir(parents=True, exist_ok=True)
    subset(source, dest, "train", args.train, seed=0)
    subset(source, dest, "t10k", args.test, seed=1)
    print(f"wrote {args.train} train and {args.test} test images to {dest}")


if __name__ == "__main__":
    main()
