"""Per-trial bookkeeping of a user's objective: hpsearch's runner against a bare Optuna loop.

The function trains nothing: it reports three epochs and returns. Both sides store their
trials in a SQLite file and use the same TPE sampler and median pruner, in the same run; the
difference per trial is what hpsearch adds (seeding, the per-epoch history and trial
attributes, heartbeats, the weight-pruning callback, the failure guard).

    python benchmarks/objective_overhead.py [--trials 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

from hpsearch.spec import parse_spec
from hpsearch.study._options import RunOptions
from hpsearch.study._run import run_here

EPOCHS = 3
STUDY = f"""
seed = 0
[objective]
metric = "valid_accuracy"
direction = "maximize"
max_epochs = {EPOCHS}
[search]
lr = {{ low = 1e-4, high = 1e-1, log = true }}
width = {{ low = 16, high = 256 }}
act = {{ choices = ["relu", "tanh"] }}
dropout = {{ low = 0.1, high = 0.5, step = 0.1, when = {{ act = "relu" }} }}
[sampler]
kind = "tpe"
n_startup_trials = 5
[pruner]
kind = "median"
"""


def score(params: dict[str, Any], epoch: int) -> float:
    """A made-up validation accuracy that rises with epochs and depends on the parameters."""
    return 0.9 - abs(params["lr"] - 0.01) - 0.05 / epoch + params["width"] / 10_000


def objective(params: dict[str, Any], ctx: Any) -> float:
    """The user's function: no training, three reported epochs."""
    for epoch in range(1, ctx.max_epochs + 1):
        ctx.report(epoch, valid_accuracy=score(params, epoch))
    return score(params, ctx.max_epochs)


def bare(trial: optuna.Trial) -> float:
    """The same function as a hand-written Optuna objective."""
    params: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
        "width": trial.suggest_int("width", 16, 256),
        "act": trial.suggest_categorical("act", ["relu", "tanh"]),
    }
    if params["act"] == "relu":
        params["dropout"] = trial.suggest_float("dropout", 0.1, 0.5, step=0.1)
    for epoch in range(1, EPOCHS + 1):
        trial.report(score(params, epoch), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned
    return score(params, EPOCHS)


def main() -> None:
    """Time both on SQLite files in one run and print the per-trial figures and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=60)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        spec = parse_spec(STUDY, Path(tmp) / "overhead.toml")
        url = f"sqlite:///{tmp}/hpsearch.db"
        opts = RunOptions(args.trials, url, Path(tmp), "cpu", progress=False, function=objective)
        start = time.perf_counter()
        run_here(spec, opts)
        ours = (time.perf_counter() - start) / args.trials

        study = optuna.create_study(
            storage=f"sqlite:///{tmp}/bare.db",
            direction="maximize",
            sampler=optuna.samplers.TPESampler(n_startup_trials=5, seed=0),
            pruner=optuna.pruners.MedianPruner(n_warmup_steps=2),
        )
        start = time.perf_counter()
        study.optimize(bare, n_trials=args.trials)
        theirs = (time.perf_counter() - start) / args.trials
    print(f"trials={args.trials}, {EPOCHS} reported epochs each, no training, SQLite files")
    print(f"hpsearch run:      {ours * 1000:.1f} ms/trial (start-up and study creation included)")
    print(f"bare Optuna loop:  {theirs * 1000:.1f} ms/trial")
    own = (ours - theirs) * 1000
    print(f"hpsearch's own bookkeeping: {own:.1f} ms/trial; ratio {ours / theirs:.2f}x")


if __name__ == "__main__":
    main()
