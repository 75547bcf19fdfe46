"""Flowers: seconds for one 10-epoch trial, and the test accuracy of a flowers-narrow search.

    python benchmarks/flowers.py speed --data-dir ../shared/data [--epochs 10]
    python benchmarks/flowers.py accuracy --data-dir ../shared/data --trials 30 [--max-epochs 30]

`speed` trains the default flowers model (conv 6-12-24, no regularizers, Adam lr 1e-3, batch
128, 64x64 images) for 10 epochs through hpsearch's loop, and, as a baseline measured in the
same run, one epoch of the usual per-sample pipeline (ImageFolder + PIL transforms +
DataLoader) with the same model. The reference from the original experiments is 692 s for 10
epochs at 64.9% test accuracy.

`accuracy` runs a flowers-narrow study (on a temporary SQLite file, or --storage to keep it and
to resume an interrupted run), picks the best trial by
validation accuracy only, retrains it from its recorded parameters and seed (bit-identical on
CPU, which is checked), and evaluates that model once on the held-out test split.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import optuna
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from hpsearch.objectives._builtin import classifier_for
from hpsearch.objectives._data import image_splits, image_test_split, load_image_set
from hpsearch.objectives._flowers import build_cnn
from hpsearch.objectives._runner import run_trial
from hpsearch.objectives._train import FitConfig, evaluate, fit, make_optimizer
from hpsearch.reporting._testset import _context
from hpsearch.spec import TrainingSpec, load_spec
from hpsearch.storages._artifacts import load_weights, store_for
from hpsearch.study._options import RunOptions
from hpsearch.study._run import run_here as run_study

REFERENCE_S, REFERENCE_ACC = 692.0, 0.649


def speed(args: argparse.Namespace) -> None:
    """One default 10-epoch trial vs one epoch of a per-sample DataLoader pipeline."""
    spec = load_spec("flowers-reg")
    hp = TrainingSpec()
    start = time.perf_counter()
    splits = image_splits(spec.data, args.data_dir, torch.device("cpu"))
    load_s = time.perf_counter() - start
    torch.manual_seed(0)
    model = build_cnn(spec.model.channels, 5, False, 0.0, 0.0)
    opt = make_optimizer("adam", model.parameters(), hp.lr, 0.0, 0.9)
    start = time.perf_counter()
    result = fit(model, opt, splits, FitConfig(args.epochs, hp.batch_size, args.epochs, 0), print)
    ours = time.perf_counter() - start
    x_test, y_test = image_test_split(spec.data, args.data_dir, torch.device("cpu"))
    _, test_acc = evaluate(model, x_test, y_test)
    baseline = dataloader_epoch(args.data_dir, spec.data.image_size, hp.batch_size)
    per_epoch = ours / len(result.history)
    print(f"threads={torch.get_num_threads()}, {len(splits.x_train)} train images at 64x64")
    print(f"data load (cached tensors): {load_s:.2f} s")
    print(
        f"hpsearch, {len(result.history)} epochs: {ours:.1f} s ({per_epoch:.2f} s/epoch), "
        f"test accuracy {test_acc:.3f} (best valid {result.best.valid_accuracy:.3f})"
    )
    print(f"per-sample DataLoader, 1 epoch: {baseline:.2f} s -> {baseline / per_epoch:.1f}x slower")
    print(
        f"vs the reference 692 s for 10 epochs: {REFERENCE_S / ours * args.epochs / 10:.1f}x faster"
    )


def dataloader_epoch(root: Path, size: int, batch: int) -> float:
    """One training epoch the tutorial way: decode, resize and normalize every image per step."""
    tf = transforms.Compose(
        [
            transforms.Resize(size),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        ]
    )
    full = datasets.ImageFolder(str(root / "flowers"), transform=tf)
    spec = load_spec("flowers-reg")
    train_idx = load_image_set(spec.data, root).train_idx.tolist()
    loader = DataLoader(Subset(full, train_idx), batch_size=batch, shuffle=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(*list(build_cnn((6, 12, 24), 5, False, 0.0, 0.0))[1:])
    model = model.to(memory_format=torch.contiguous_format)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    start = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def accuracy(args: argparse.Namespace) -> None:
    """Search, select by validation, retrain the best trial, evaluate it once on test."""
    spec = load_spec(args.study)
    if args.max_epochs:
        spec = dataclasses.replace(
            spec, training=dataclasses.replace(spec.training, max_epochs=args.max_epochs)
        )
    with tempfile.TemporaryDirectory() as tmp:
        url = args.storage or f"sqlite:///{tmp}/flowers.db"
        start = time.perf_counter()
        opts = RunOptions(args.trials, url, args.data_dir, "cpu", progress=False)
        summary = run_study(spec, opts, print)
        search_s = time.perf_counter() - start
        best = optuna.load_study(study_name=spec.name, storage=url).best_trial
        device = torch.device("cpu")
        fixed = optuna.trial.FixedTrial(best.params, number=best.number)
        kind = classifier_for(spec)
        value = run_trial(fixed, spec, kind.objective, args.data_dir, device, params=best.params)  # type: ignore[arg-type]
        weights = load_weights(store_for(opts.artifact_dir()), best)
        tested = kind.test(dict(best.params), _context(spec, best, args.data_dir), weights)
    test_acc = tested["accuracy"]
    n_test = sum(sum(row) for row in tested["confusion"])
    print(
        f"budget: {args.trials} trials, max {spec.training.max_epochs} epochs, "
        f"{summary.pruned} pruned, search took {search_s / 60:.1f} min on "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"best trial #{best.number} by validation: {best.value:.4f}; retrained: {value:.4f} "
        f"({'identical' if value == best.value else 'DIFFERENT'})"
    )
    print(f"params: {best.params}")
    print(f"test accuracy of the best trial: {test_acc:.4f} on {n_test} held-out images")


def main() -> None:
    """Dispatch to `speed` or `accuracy`."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("mode", choices=["speed", "accuracy"])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--study", default="flowers-narrow")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--max-epochs", type=int, default=0)
    parser.add_argument("--storage", help="keep the study here (default: a temporary SQLite file)")
    args = parser.parse_args()
    speed(args) if args.mode == "speed" else accuracy(args)


if __name__ == "__main__":
    main()
