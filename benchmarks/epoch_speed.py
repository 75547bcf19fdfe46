"""Epoch time of the mnist-reg MLP at batch 256: whole-tensor batching vs a per-sample DataLoader.

Both sides train the same model (BatchNorm off, dropout 0.3, Adam) for one epoch on the 48,000
training images and evaluate the 12,000 validation images; runs are interleaved and repeated,
and the ratio of medians is reported, so machine noise hits both sides alike.

    python benchmarks/epoch_speed.py [--data-dir ../shared/data] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from hpsearch.objectives._data import mnist_splits, split_indices
from hpsearch.objectives._mnist import build_mlp
from hpsearch.objectives._train import (
    FitConfig,
    evaluate,
    make_optimizer,
    resolve_device,
    train_epoch,
)
from hpsearch.spec import DataSpec, ModelSpec

BATCH = 256


def project_epoch(splits: object, device: torch.device) -> float:
    """One hpsearch epoch: train on whole tensors, then evaluate."""
    model = build_mlp(ModelSpec().hidden, batch_norm=False, dropout=0.3).to(device)
    opt = make_optimizer("adam", model.parameters(), 1e-3, 0.0, 0.9)
    generator = torch.Generator().manual_seed(0)
    _sync(device)
    start = time.perf_counter()
    train_epoch(model, opt, splits, FitConfig(1, BATCH, 1, 0), generator)  # type: ignore[arg-type]
    evaluate(model, splits.x_valid, splits.y_valid)  # type: ignore[attr-defined]
    _sync(device)
    return time.perf_counter() - start


def dataloader_epoch(root: Path, spec: DataSpec, device: torch.device) -> float:
    """The usual tutorial pipeline: torchvision MNIST + ToTensor/Normalize + DataLoader."""
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    full = datasets.MNIST(str(root), train=True, transform=tf)
    train_idx, valid_idx = split_indices(len(full), spec)
    train = DataLoader(Subset(full, train_idx.tolist()), batch_size=BATCH, shuffle=True)
    valid = DataLoader(Subset(full, valid_idx.tolist()), batch_size=4096)
    model = build_mlp(ModelSpec().hidden, batch_norm=False, dropout=0.3).to(device)
    opt = make_optimizer("adam", model.parameters(), 1e-3, 0.0, 0.9)
    _sync(device)
    start = time.perf_counter()
    model.train()
    for x, y in train:
        x, y = x.to(device).flatten(1), y.to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.inference_mode():
        for x, y in valid:
            model(x.to(device).flatten(1)).argmax(1).eq(y.to(device)).sum().item()
    _sync(device)
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    """Wait for queued GPU work so the clock measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Interleave both pipelines and print medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    spec = DataSpec()
    splits = mnist_splits(spec, args.data_dir, device)
    project_epoch(splits, device)  # warm-up (allocator, kernels)
    ours, theirs = [], []
    for _ in range(args.repeats):
        ours.append(project_epoch(splits, device))
        theirs.append(dataloader_epoch(args.data_dir, spec, device))
    mo, mt = statistics.median(ours), statistics.median(theirs)
    print(f"device={device} threads={torch.get_num_threads()} batch={BATCH} repeats={args.repeats}")
    print(f"hpsearch epoch:   median {mo:.2f} s, runs {[round(t, 2) for t in ours]}")
    print(f"DataLoader epoch: median {mt:.2f} s, runs {[round(t, 2) for t in theirs]}")
    print(f"speed-up: {mt / mo:.2f}x")


if __name__ == "__main__":
    main()
