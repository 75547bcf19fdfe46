"""Why mnist-reg's trials stopped short, on validation data only: early stopping and schedule.

Trains the mnist-reg MLP for a few parameter sets with hpsearch's own training epoch, once per
learning-rate schedule (constant; cosine over 20 and over 30 epochs), records each epoch's
validation loss and accuracy, and replays the stopping rules on that history: which epoch each
rule keeps and the validation accuracy it reports. The test split is never read.

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/mnist_reg_defaults.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {  # TPE's favourites in the headline run, and a dropout model
    "BN, batch 64, lr 5e-4": dict(batch_norm=True, dropout=0.0, batch_size=64, lr=5e-4, wd=1e-5),
    "BN, batch 128, lr 1e-3": dict(batch_norm=True, dropout=0.0, batch_size=128, lr=1e-3, wd=1e-6),
    "dropout 0.2, batch 128, lr 1e-3": dict(
        batch_norm=False, dropout=0.2, batch_size=128, lr=1e-3, wd=1e-6
    ),
}
SCHEDULES = (("constant", 30), ("cosine", 20), ("cosine", 30))


@dataclass(frozen=True)
class Rule:
    """An early-stopping rule: which number it watches, and its patience."""

    name: str
    watch: str  # "loss" (lower is better) or "acc" (higher is better)
    patience: int


RULES = (
    Rule("loss, patience 3 (shipped)", "loss", 3),
    Rule("loss, patience 5", "loss", 5),
    Rule("accuracy, patience 3", "acc", 3),
    Rule("accuracy, patience 5", "acc", 5),
    Rule("accuracy, no stop", "acc", 10**6),
)


def history(config: str, schedule: str, epochs: int) -> list[tuple[float, float]]:
    """Validation (loss, accuracy) after each epoch of one training run."""
    import torch

    from hpsearch.objectives._data import mnist_splits
    from hpsearch.objectives._mnist import build_mlp
    from hpsearch.objectives._train import (
        FitConfig,
        evaluate,
        make_optimizer,
        make_scheduler,
        train_epoch,
    )
    from hpsearch.spec import load_spec

    torch.set_num_threads(1)
    torch.manual_seed(0)
    hp = CONFIGS[config]
    spec = load_spec("mnist-reg")
    data_dir = Path(os.environ.get("HPSEARCH_DATA_DIR", "data"))
    splits = mnist_splits(spec.data, data_dir, torch.device("cpu"))
    model = build_mlp(spec.model.hidden, bool(hp["batch_norm"]), float(hp["dropout"]))
    optimizer = make_optimizer("adam", model.parameters(), float(hp["lr"]), float(hp["wd"]), 0.9)
    cfg = FitConfig(epochs, int(hp["batch_size"]), epochs, 0, schedule=schedule)
    scheduler = make_scheduler(optimizer, cfg)
    generator = torch.Generator().manual_seed(0)
    out = []
    for _ in range(epochs):
        train_epoch(model, optimizer, splits, cfg, generator)
        if scheduler is not None:
            scheduler.step()
        out.append(evaluate(model, splits.x_valid, splits.y_valid))
    return out


def replay(hist: list[tuple[float, float]], rule: Rule) -> tuple[int, int, float]:
    """(epochs run, kept epoch, validation accuracy reported) under a rule."""
    best_epoch, best = 0, math.inf
    for epoch, (loss, acc) in enumerate(hist, start=1):
        score = loss if rule.watch == "loss" else -acc
        if score < best:
            best_epoch, best = epoch, score
        if epoch - best_epoch >= rule.patience:
            return epoch, best_epoch, hist[best_epoch - 1][1]
    return len(hist), best_epoch, hist[best_epoch - 1][1]


def main() -> None:
    """Run every (config, schedule) and print one Markdown table per config."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    runs = [(c, s, e) for c in CONFIGS for s, e in SCHEDULES]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = dict(zip(runs, pool.map(history, *zip(*runs, strict=True)), strict=True))
    for config in CONFIGS:
        print(f"\n{config}\n")
        print("| schedule | rule | epochs run | kept epoch | valid accuracy |")
        print("|---|---|---|---|---|")
        for schedule, epochs in SCHEDULES:
            for rule in RULES:
                ran, kept, acc = replay(results[(config, schedule, epochs)], rule)
                row = f"| {schedule} {epochs} | {rule.name} | {ran} | {kept} | {acc:.4f} |"
                print(row)


if __name__ == "__main__":
    main()
