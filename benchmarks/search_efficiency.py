"""Narrowing vs plain random vs TPE on the mnist-reg search space, at equal trial budgets.

A real but cheap objective: the mnist-reg space and model on a fixed MNIST subset (4,000 train /
2,000 validation images drawn from the training set), a few epochs, no pruning, so only the
sampler differs. For each seed and sampler it runs one study and records the best validation
accuracy after 25, 50 and 100 trials; it prints mean ± standard error and the min-max range
across seeds and writes every raw curve to a JSON file.

    python benchmarks/search_efficiency.py --data-dir ../shared/data --seeds 0 1 2 --trials 100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

from hpsearch.spec import DataSpec, PrunerSpec, load_spec
from hpsearch.study._options import RunOptions
from hpsearch.study._run import run_here as run_study

CHECKPOINTS = (25, 50, 100)


def curve(sampler: str, seed: int, args: argparse.Namespace, tmp: Path) -> list[float]:
    """Best-so-far validation accuracy after each trial of one study."""
    import optuna

    base = load_spec("mnist-reg")
    sampler_spec = dataclasses.replace(
        base.sampler,
        kind=sampler,
        trials_per_round=args.per_round,
        keep=args.keep,
        min_keep=args.min_keep,
        margin=args.margin,
        drop_after=args.drop_after,
    )
    spec = dataclasses.replace(
        base,
        name=f"{sampler}-{seed}",
        seed=seed,
        data=DataSpec(train_size=args.train, valid_size=args.valid),
        training=dataclasses.replace(base.training, max_epochs=args.epochs),
        sampler=sampler_spec,
        pruner=PrunerSpec(kind="none"),
    )
    url = f"sqlite:///{tmp / 'search.db'}"
    run_study(spec, RunOptions(args.trials, url, args.data_dir, "cpu", progress=False), print)
    trials = optuna.load_study(study_name=spec.name, storage=url).trials
    best, out = 0.0, []
    for trial in trials:
        best = max(best, trial.value or 0.0)
        out.append(best)
    return out


def main() -> None:
    """Run every sampler for every seed, then print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", default=["random", "tpe", "narrowing"])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--valid", type=int, default=2000)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--keep", type=float, default=0.2)
    parser.add_argument("--min-keep", type=int, default=5)
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--drop-after", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/search_efficiency.json"))
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text())
    for seed in args.seeds:
        for sampler in args.samplers:
            key = sampler
            if sampler == "narrowing":
                key += f" (per_round={args.per_round}, keep={args.keep}, margin={args.margin}"
                # keys made before --min-keep existed used 3 and do not name it
                key += f", min_keep={args.min_keep}" if args.min_keep != 3 else ""
                # keys made before --drop-after existed dropped choices at once (0)
                key += f", drop_after={args.drop_after})" if args.drop_after else ")"
            if str(seed) in results.get(key, {}):
                continue
            started = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                values = curve(sampler, seed, args, Path(tmp))
            results.setdefault(key, {})[str(seed)] = values
            args.out.write_text(json.dumps(results, indent=1))
            took = time.perf_counter() - started
            print(f"{key} seed {seed}: best {values[-1]:.4f} in {took:.0f} s", flush=True)
    print_table(results, args)


def print_table(results: dict[str, dict[str, list[float]]], args: argparse.Namespace) -> None:
    """Mean ± standard error of the best validation accuracy at each checkpoint, and its range."""
    print("| sampler | " + " | ".join(f"best after {n}" for n in CHECKPOINTS) + " |")
    print("| --- |" + " --- |" * len(CHECKPOINTS))
    for key, by_seed in results.items():
        cells = []
        for n in CHECKPOINTS:
            values = at(by_seed, n)
            cells.append(summarize(values) if values else "-")
        print(f"| {key} ({len(by_seed)} seeds) | " + " | ".join(cells) + " |")
    for baseline in ("random", "tpe"):
        if baseline in results:
            print_differences(results, baseline)


def print_differences(results: dict[str, dict[str, list[float]]], baseline: str) -> None:
    """Each sampler's mean minus the baseline's, ± the standard error of that difference."""
    print(
        f"\n| difference from {baseline} | " + " | ".join(f"after {n}" for n in CHECKPOINTS) + " |"
    )
    print("| --- |" + " --- |" * len(CHECKPOINTS))
    for key, by_seed in results.items():
        if key == baseline:
            continue
        cells = []
        for n in CHECKPOINTS:
            ours, base = at(by_seed, n), at(results[baseline], n)
            if len(ours) < 2 or len(base) < 2:
                cells.append("-")
                continue
            diff = statistics.mean(ours) - statistics.mean(base)
            se = (_sem(ours) ** 2 + _sem(base) ** 2) ** 0.5
            cells.append(f"{diff:+.4f} ± {se:.4f}")
        print(f"| {key} | " + " | ".join(cells) + " |")


def at(by_seed: dict[str, list[float]], n: int) -> list[float]:
    """Each seed's best-so-far after n trials (seeds whose curve is shorter are left out)."""
    return [curve[n - 1] for curve in by_seed.values() if len(curve) >= n]


def _sem(values: list[float]) -> float:
    """Standard error of the mean."""
    return statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0


def summarize(values: list[float]) -> str:
    """'mean ± standard error (min-max)' over seeds."""
    mean = statistics.mean(values)
    return f"{mean:.4f} ± {_sem(values):.4f} ({min(values):.4f}-{max(values):.4f})"


if __name__ == "__main__":
    main()
