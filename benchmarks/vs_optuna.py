"""Seconds per trained epoch: `hpsearch run` with its defaults against a hand-written Optuna script.

Both run the same enqueued parameter sets (the same batch sizes) of the mnist-reg MLP on the
full MNIST for the same epochs, in one run of this file, each timed from process start to
exit (start-up included). The script (benchmarks/optuna_script.py) is the optuna-examples
style: DataLoader, RandomSampler, MedianPruner, one process with torch's default threads.

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/vs_optuna.py [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

HERE = Path(__file__).resolve().parent
PARAMS = [
    {"batch_norm": True, "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 128},
    {"batch_norm": False, "dropout": 0.2, "lr": 1e-3, "weight_decay": 1e-5, "batch_size": 128},
    {"batch_norm": True, "lr": 3e-4, "weight_decay": 1e-4, "batch_size": 128},
    {"batch_norm": False, "dropout": 0.4, "lr": 3e-4, "weight_decay": 1e-6, "batch_size": 128},
    {"batch_norm": True, "lr": 3e-3, "weight_decay": 1e-6, "batch_size": 128},
    {"batch_norm": False, "dropout": 0.1, "lr": 2e-3, "weight_decay": 1e-4, "batch_size": 128},
]
STUDY = """\
description = "mnist-reg's space and model, random order, for benchmarks/vs_optuna.py"
seed = 0
[data]
dataset = "mnist"
train_size = 48000
valid_size = 12000
[model]
hidden = [500, 400, 300, 200, 100, 50]
[training]
max_epochs = {epochs}
patience = {epochs}
[search]
lr = {{ low = 1e-4, high = 1e-1, log = true }}
dropout = {{ low = 0.1, high = 0.5, step = 0.1, when = {{ batch_norm = false }} }}
weight_decay = {{ low = 1e-6, high = 1e-2, log = true }}
batch_size = {{ choices = [32, 64, 128, 256, 512] }}
batch_norm = {{ choices = [true, false] }}
[sampler]
kind = "random"
[pruner]
kind = "median"
"""


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall seconds of a command from start to exit."""
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def hpsearch_seconds(data: str, epochs: int, folder: Path) -> tuple[float, int]:
    """`hpsearch run` with default workers on a study with the parameter sets enqueued."""
    study = folder / "vs-optuna.toml"
    study.write_text(STUDY.format(epochs=epochs))
    url = f"sqlite:///{folder / 'trials.db'}"
    base = [sys.executable, "-m", "hpsearch"]
    args = ["--study", str(study), "--trials", str(len(PARAMS)), "--storage", url]
    subprocess.run([*base, "create", *args], check=True, stdout=subprocess.DEVNULL)
    stored = optuna.load_study(study_name="vs-optuna", storage=url)
    for params in PARAMS:
        stored.enqueue_trial(params)
    env = dict(os.environ, HPSEARCH_DATA_DIR=data)
    seconds = timed([*base, "run", *args, "--no-progress"], env)
    trials = optuna.load_study(study_name="vs-optuna", storage=url).trials
    ran = sorted(json.dumps(t.params, sort_keys=True) for t in trials)
    assert ran == sorted(json.dumps(p, sort_keys=True) for p in PARAMS), ran
    return seconds, sum(len(t.intermediate_values) for t in trials)


def main() -> None:
    """Warm both (MNIST cache, page cache), then time each once and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    data = os.environ.get("HPSEARCH_DATA_DIR", "data")
    script = [sys.executable, str(HERE / "optuna_script.py"), data]
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        warm.mkdir()
        hpsearch_seconds(data, 1, warm)  # builds the decoded-MNIST cache, as any first run does
        ours, epochs_run = hpsearch_seconds(data, args.epochs, Path(tmp))
    theirs = timed([*script, json.dumps(PARAMS), str(args.epochs)])
    script_epochs = len(PARAMS) * args.epochs
    cores = len(os.sched_getaffinity(0))
    print(
        f"hpsearch run (defaults, {cores} cores): {ours:.1f} s, {epochs_run} epochs trained, "
        f"{ours / epochs_run:.2f} s per epoch"
    )
    print(
        f"optuna-examples-style script: {theirs:.1f} s, {script_epochs} epochs trained, "
        f"{theirs / script_epochs:.2f} s per epoch"
    )
    print(f"ratio hpsearch / script: {(ours / epochs_run) / (theirs / script_epochs):.2f}")


if __name__ == "__main__":
    main()
