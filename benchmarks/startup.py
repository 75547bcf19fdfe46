"""Fixed cost of one `hpsearch run`: process start to first trial, last trial to process exit.

Runs, interleaved and repeated, (a) a bare `python -c "import torch"` process, the baseline, and
(b) `python -m hpsearch run` of a one-trial, one-epoch study on the full MNIST data, with a
fresh SQLite file each time, once with an empty decoded-data cache (cold) and once with the
cache the cold run left (warm). The trial's datetime_start and datetime_complete in storage
mark the first trial's start and the last trial's end; the clock of this process marks the
start and the exit of the child. CPU seconds (user + system) of each process are given too: on
a machine shared with other work they move less than wall time.

    python benchmarks/startup.py [--data-dir ../shared/data] [--repeats 3] [--workers 1]
        [--before PATH] [--freeze-at-exit]
    python benchmarks/startup.py --data-only [--repeats 10]

--before also runs another checkout's hpsearch (e.g. `git archive` of an older commit into a
folder), interleaved with this one; --freeze-at-exit also runs this checkout's CLI through a
wrapper that, once it returns, disposes its SQLAlchemy engines and calls gc.freeze(), to
measure that change to the exit path. --data-only instead times, in this process, reading the
MNIST training split from its IDX files against reading it from the decoded cache.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna

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
[sampler]
kind = "random"
[pruner]
kind = "none"
"""
TORCH = "import time, torch; print(time.time(), flush=True)"
# The proposed exit: close the storage's connections (SQLite merges its WAL file on the last
# close), then gc.freeze() so that the interpreter's teardown does not walk every object of
# torch again. The engines are found with gc.get_objects() here, a stand-in for the storage
# closing its own engine (that scan costs about 0.2 s, so the figure is an upper bound).
FROZEN = """import gc, sys
from hpsearch.cli import main
sys.argv[0] = "hpsearch"
try:
    rc = main()
finally:
    from sqlalchemy.engine import Engine
    for engine in [o for o in gc.get_objects() if isinstance(o, Engine)]:
        engine.dispose()
    gc.freeze()
sys.exit(rc)
"""


def cpu_seconds() -> float:
    """User + system CPU time of this process's finished children (less noisy than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_torch() -> tuple[float, float, float, float]:
    """(start to import done, import done to exit, whole process, its CPU) of `import torch`."""
    cpu, start = cpu_seconds(), time.time()
    out = subprocess.run([sys.executable, "-c", TORCH], check=True, capture_output=True, text=True)
    end = time.time()
    imported = float(out.stdout.strip())
    return imported - start, end - imported, end - start, cpu_seconds() - cpu


def hpsearch_run(
    args: argparse.Namespace, variant: Variant, folder: Path, cache: Path
) -> tuple[float, ...]:
    """(start to first trial, last trial to exit, first trial's own, whole process, its CPU)."""
    db = folder / "startup.db"
    for stale in folder.glob("startup.db*"):
        stale.unlink()
    url = f"sqlite:///{db}"
    entry = ["-c", FROZEN] if variant.freeze else ["-m", "hpsearch"]
    cmd = [sys.executable, *entry, "run", "--study", str(folder / "tiny.toml"), "--trials", "1"]
    cmd += ["--storage", url, "--data-dir", str(args.data_dir), "--device", "cpu"]
    cmd += ["--no-progress", *(["--workers", args.workers] if args.workers != "default" else [])]
    env = {**os.environ, "HPSEARCH_CACHE_DIR": str(cache), "HPSEARCH_OFFLINE": "1"}
    cpu, start = cpu_seconds(), time.time()
    subprocess.run(cmd, check=True, capture_output=True, cwd=variant.tree, env=env)
    end = time.time()
    cpu = cpu_seconds() - cpu
    if db.with_name(f"{db.name}-wal").exists():  # committed, but only in the WAL file
        print(f"warning: {variant.name} left {db.name}-wal behind", file=sys.stderr)
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    first = min(t.datetime_start.timestamp() for t in trials if t.datetime_start)
    last = max(t.datetime_complete.timestamp() for t in trials if t.datetime_complete)
    own = min(trials, key=lambda t: t.number).duration
    own_s = own.total_seconds() if own else float("nan")
    return first - start, end - last, own_s, end - start, cpu


@dataclass(frozen=True)
class Variant:
    """A checkout to run (`python -m hpsearch` from its folder), optionally with gc.freeze()."""

    name: str
    tree: Path
    freeze: bool = False


def data_only(args: argparse.Namespace) -> None:
    """Median seconds of decoding the training IDX files vs loading the cache, interleaved."""
    from hpsearch.objectives._data import MNIST_FILES, decode_mnist, read_mnist

    raw = args.data_dir / "MNIST" / "raw"
    readers: dict[str, Callable[[], object]] = {
        "IDX files (numpy)": lambda: decode_mnist(raw / MNIST_FILES[0], raw / MNIST_FILES[1]),
        "decoded cache (torch.load)": lambda: read_mnist(args.data_dir, train=True),
    }
    times: dict[str, list[float]] = {name: [] for name in readers}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HPSEARCH_CACHE_DIR"] = tmp
        read_mnist(args.data_dir, train=True)  # fills the cache
        for _ in range(args.repeats):
            for name, read in readers.items():
                start = time.perf_counter()
                read()
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        each = ", ".join(f"{1000 * v:.0f}" for v in values)
        print(f"{name}: {1000 * statistics.median(values):.0f} ms ({each})")


def median(rows: list[tuple[float, ...]], column: int) -> float:
    """The median of one column."""
    return statistics.median(row[column] for row in rows)


def main() -> None:
    """Measure, then print each figure's median, its runs and the ratios to bare torch."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("HPSEARCH_DATA_DIR"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1", help="a count, or 'default' to omit it")
    parser.add_argument("--before", type=Path, help="another checkout to compare with")
    parser.add_argument("--freeze-at-exit", action="store_true")
    parser.add_argument("--data-only", action="store_true")
    args = parser.parse_args()
    if args.data_dir is None:
        parser.error("--data-dir or HPSEARCH_DATA_DIR must name the full data")
    args.data_dir = args.data_dir.resolve()
    if args.data_only:
        data_only(args)
        return
    here = Path(__file__).resolve().parents[1]
    variants = [Variant("before", args.before.resolve())] if args.before else []
    variants.append(Variant("this checkout", here))
    if args.freeze_at_exit:
        variants.append(Variant("this checkout + dispose, gc.freeze() at exit", here, freeze=True))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch_rows: list[tuple[float, ...]] = []
    runs: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "tiny.toml").write_text(STUDY)
        for repeat in range(args.repeats):
            torch_rows.append(bare_torch())
            for number, variant in enumerate(variants):
                cache = folder / f"cache-{repeat}-{number}"  # empty: the cold run fills it
                for state in ("cold", "warm"):
                    row = hpsearch_run(args, variant, folder, cache)
                    runs.setdefault((variant.name, state), []).append(row)
    report(args, torch_rows, runs)


def report(
    args: argparse.Namespace,
    torch_rows: list[tuple[float, ...]],
    runs: dict[tuple[str, str], list[tuple[float, ...]]],
) -> None:
    """Medians (with every run in brackets) and the fixed cost against bare `import torch`."""

    def cell(rows: list[tuple[float, ...]], column: int) -> str:
        each = ", ".join(f"{row[column]:.2f}" for row in rows)
        return f"{median(rows, column):.2f} s ({each})"

    whole = median(torch_rows, 2)
    print(f"workers {args.workers}, repeats {args.repeats}, {os.cpu_count()} CPUs, ", end="")
    print(f"load average at the end {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"bare `import torch`: import {cell(torch_rows, 0)}; exit {cell(torch_rows, 1)}; ")
    print(f"  whole process {cell(torch_rows, 2)}, CPU {cell(torch_rows, 3)}")
    for (name, state), rows in runs.items():
        fixed = median([(row[0] + row[1],) for row in rows], 0)
        print(f"{name}, {state} cache: start to first trial {cell(rows, 0)}; last trial to ")
        print(f"  exit {cell(rows, 1)}; first trial's own {cell(rows, 2)}; whole ", end="")
        print(f"{cell(rows, 3)}, CPU {cell(rows, 4)}; start + exit {fixed:.2f} s = ", end="")
        print(f"{fixed / whole:.2f}x the bare torch process")


if __name__ == "__main__":
    main()
