"""Trials per minute with 1, 2 and 4 worker processes, on SQLite and on PostgreSQL.

Tiny trials (one epoch of a 64-unit MLP on 2,400 MNIST images) make the storage matter. Each
configuration runs `hpsearch run --workers K` on a fresh database; throughput is measured from
the stored timestamps (first trial start to last trial end), and the share of each trial's time
spent outside its epochs (storage reads and writes, sampling, model set-up) from the trial's own
duration minus its epochs' seconds. Ratios are against 1 worker on SQLite in the same run.

    python benchmarks/workers.py [--trials 40]   # PostgreSQL too when HPSEARCH_TEST_POSTGRES is set
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import optuna

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
[sampler]
kind = "random"
[pruner]
kind = "none"
"""


def fresh_postgres(url: str) -> str:
    """A new empty database on the server."""
    import sqlalchemy

    name = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def measure(url: str, study: Path, workers: int, trials: int) -> tuple[float, float]:
    """Trials per minute and the median non-epoch share of trial time."""
    env = dict(os.environ, HPSEARCH_STORAGE=url, HPSEARCH_OFFLINE="1")
    cmd = [
        sys.executable,
        "-m",
        "hpsearch",
        "run",
        "--study",
        str(study),
        "--trials",
        str(trials),
        "--workers",
        str(workers),
        "--device",
        "cpu",
        "--no-progress",
        "--data-dir",
        str(ROOT / "tests" / "data"),
    ]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    done = [
        t
        for t in optuna.load_study(study_name="bench", storage=url).trials
        if t.state.name == "COMPLETE"
    ]
    start = min(t.datetime_start for t in done if t.datetime_start)
    end = max(t.datetime_complete for t in done if t.datetime_complete)
    per_minute = len(done) / (end - start).total_seconds() * 60
    shares = []
    for t in done:
        assert t.datetime_start and t.datetime_complete
        total = (t.datetime_complete - t.datetime_start).total_seconds()
        epochs = sum(h["seconds"] for h in t.user_attrs["history"])
        shares.append((total - epochs) / total)
    return per_minute, statistics.median(shares)


def main() -> None:
    """Every storage x worker count, then a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "bench.toml"
        study.write_text(STUDY)
        storages = {"sqlite": lambda k: f"sqlite:///{tmp}/w{k}.db"}
        if os.environ.get("HPSEARCH_TEST_POSTGRES"):
            pg = os.environ["HPSEARCH_TEST_POSTGRES"]
            storages["postgresql"] = lambda k: fresh_postgres(pg)
        for name, make_url in storages.items():
            for k in args.workers:
                rate, share = measure(make_url(k), study, k, args.trials)
                rows.append((name, k, rate, share))
                print(
                    f"{name} workers={k}: {rate:.0f} trials/min, non-epoch share {share:.0%}",
                    flush=True,
                )
    base = rows[0][2]
    print(f"\ncpus={os.cpu_count()}, {args.trials} trials per run")
    print("| storage | workers | trials/min | vs 1 worker on SQLite | time outside epochs |")
    print("| --- | --- | --- | --- | --- |")
    for name, k, rate, share in rows:
        print(f"| {name} | {k} | {rate:.0f} | {rate / base:.2f}x | {share:.0%} |")


if __name__ == "__main__":
    main()
