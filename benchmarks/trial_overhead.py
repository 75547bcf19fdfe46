"""Per-trial overhead on SQLite: everything a trial costs besides its epochs.

Runs a study of tiny one-epoch trials through hpsearch's real path (study file, SQLite storage
in WAL mode, TPE sampler, median pruner, per-epoch user attributes) and subtracts the epochs'
own time. The baseline, measured in the same run, is the same objective in a bare Optuna loop
on in-memory storage.

    python benchmarks/trial_overhead.py [--trials 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
import torch

from hpsearch.objectives._factory import make_objective
from hpsearch.spec import parse_spec
from hpsearch.study._options import RunOptions
from hpsearch.study._run import run_here as run_study

ROOT = Path(__file__).resolve().parents[1]
STUDY = """
seed = 0
[data]
train_size = 2400
valid_size = 600
[model]
hidden = [64]
[training]
max_epochs = 1
[search]
lr = { low = 1e-4, high = 1e-2, log = true }
batch_norm = { choices = [true, false] }
dropout = { low = 0.1, high = 0.5, step = 0.1 }
[sampler]
kind = "tpe"
n_startup_trials = 5
[pruner]
kind = "median"
"""


def epoch_seconds(study: optuna.Study) -> float:
    """Sum of the epochs' own measured seconds across all trials."""
    return sum(h["seconds"] for t in study.trials for h in t.user_attrs["history"])


def main() -> None:
    """Time the SQLite path and the in-memory baseline; print the overhead per trial."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = ROOT / "tests" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        spec = parse_spec(STUDY, Path(tmp) / "overhead.toml")
        make_objective(spec, data, torch.device("cpu"))  # load data outside the clock
        url = f"sqlite:///{tmp}/trials.db"
        start = time.perf_counter()
        run_study(spec, RunOptions(args.trials, url, data, "cpu", progress=False))
        sqlite_wall = time.perf_counter() - start
        sqlite_study = optuna.load_study(study_name="overhead", storage=url)
        sqlite_over = (sqlite_wall - epoch_seconds(sqlite_study)) / args.trials

        objective = make_objective(spec, data, torch.device("cpu"))
        memory = optuna.create_study(
            direction="maximize", sampler=optuna.samplers.TPESampler(n_startup_trials=5, seed=0)
        )
        start = time.perf_counter()
        memory.optimize(objective, n_trials=args.trials)
        memory_wall = time.perf_counter() - start
        memory_over = (memory_wall - epoch_seconds(memory)) / args.trials
    print(
        f"trials={args.trials}, 1 epoch each on 2,400 images, CPU threads={torch.get_num_threads()}"
    )
    print(f"hpsearch, SQLite:  {sqlite_wall:.2f} s, overhead {sqlite_over * 1000:.0f} ms/trial")
    print(f"Optuna, in memory: {memory_wall:.2f} s, overhead {memory_over * 1000:.0f} ms/trial")
    print(f"SQLite overhead / in-memory overhead: {sqlite_over / memory_over:.2f}x")


if __name__ == "__main__":
    main()
