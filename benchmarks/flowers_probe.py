"""One flowers training run with fixed settings, printing validation per epoch (never test).

Used to choose the flowers-narrow model before spending a search on it:

    python benchmarks/flowers_probe.py --data-dir ../shared/data --channels 16,32,64,128 \\
        --lr 0.00137 --wd 3e-6 --batch 32 --noise 0.027 --epochs 60 --schedule cosine

It builds the flowers CNN and trains it with hpsearch's own loop (`fit`: early stopping off
unless --patience is given, best-loss epoch restored), on flowers-narrow's split.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import time
from pathlib import Path

import torch

from hpsearch.objectives._data import Splits, image_splits
from hpsearch.objectives._flowers import FlipAveraged, augment_batch, build_cnn
from hpsearch.objectives._train import EpochStats, FitConfig, evaluate, fit, make_optimizer
from hpsearch.spec import load_spec


def main() -> None:
    """Train once and print every epoch's validation figures and the restored best."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--channels", default="16,32,64,128")
    parser.add_argument("--convs", type=int, default=1, help="convs per block")
    parser.add_argument("--zoom", type=float, default=0.0, help="augmentation zoom-in")
    parser.add_argument("--jitter", type=float, default=0.0, help="colour jitter strength")
    parser.add_argument("--smoothing", type=float, default=0.0, help="label smoothing")
    parser.add_argument("--mixup", type=float, default=0.0, help="mixup Beta alpha")
    parser.add_argument("--cutmix", type=float, default=0.0, help="cutmix Beta alpha")
    parser.add_argument("--residual", type=int, default=0, help="residual blocks")
    parser.add_argument("--stem-stride", type=int, default=1, help="stride of the first conv")
    parser.add_argument("--seed", type=int, default=0, help="init and batch-order seed")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--bn", type=int, default=1)
    parser.add_argument("--aug", type=int, default=1)
    parser.add_argument("--optimizer", default="adam", help="adam, momentum, sgd, ...")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--wd", type=float, default=1e-4)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=1000)
    parser.add_argument("--schedule", default="cosine")
    args = parser.parse_args()
    spec = load_spec("flowers-narrow")
    data = dataclasses.replace(spec.data, image_size=args.size)
    splits = image_splits(data, args.data_dir, torch.device("cpu"))
    torch.manual_seed(args.seed)
    channels = tuple(int(c) for c in args.channels.split(","))
    model = build_cnn(
        channels,
        len(splits.classes),
        bool(args.bn),
        args.dropout,
        args.noise,
        args.convs,
        residual=bool(args.residual),
        stem_stride=args.stem_stride,
    )
    params = sum(p.numel() for p in model.parameters())
    print(f"{params} parameters, {torch.get_num_threads()} threads", flush=True)
    optimizer = make_optimizer(args.optimizer, model.parameters(), args.lr, args.wd, 0.9)
    cfg = FitConfig(
        args.epochs,
        args.batch,
        args.patience,
        args.seed,
        0.0,
        args.schedule,
        args.smoothing,
        args.mixup,
        args.cutmix,
    )
    started = time.perf_counter()
    augment = (
        functools.partial(augment_batch, zoom=args.zoom, jitter=args.jitter) if args.aug else None
    )
    result = fit(model, optimizer, splits, cfg, functools.partial(show, model, splits), augment)
    print(f"best (restored) {result.best}; flip-averaged {flip_accuracy(model, splits):.4f}")
    print(f"total {time.perf_counter() - started:.0f} s")


def flip_accuracy(model: torch.nn.Sequential, splits: Splits) -> float:
    """Validation accuracy with model.flip_average on: the same layers, scored as a study is."""
    return evaluate(FlipAveraged(*model), splits.x_valid, splits.y_valid)[1]


def show(model: torch.nn.Sequential, splits: Splits, stats: EpochStats) -> None:
    """One line per epoch."""
    print(
        f"epoch {stats.epoch}: train loss {stats.train_loss:.3f}, valid loss "
        f"{stats.valid_loss:.3f}, valid accuracy {stats.valid_accuracy:.4f} "
        f"(flip-averaged {flip_accuracy(model, splits):.4f}), {stats.seconds:.1f} s",
        flush=True,
    )


if __name__ == "__main__":
    main()
