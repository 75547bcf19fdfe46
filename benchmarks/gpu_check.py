"""What only a GPU can tell: epoch times, workers packed on one GPU, exact reruns, flowers.

Prints one Markdown block to paste into benchmarks/RESULTS.md. `--cpu` runs every step tiny on
the CPU with the committed test data (tests/data), so CI keeps the script working; its
figures mean nothing. Run it through benchmarks/gpu_check.sh.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (32, 128, 512)


@dataclass(frozen=True)
class Mode:
    """How big each step is: on a GPU with the full data, or tiny on the CPU."""

    device: str
    data_dir: Path
    study_seconds: float  # wall time per workers setting
    packings: tuple[int, ...]
    flowers_trials: int
    flowers_epochs: int
    mnist_sizes: tuple[int, int] | None  # train, valid override (the test subset is small)
    mnist_epochs: int  # --max-epochs of the packed studies, so a setting ends near its time


def gpu_mode() -> Mode:
    """The real check: full data, 60 s per packing."""
    data = Path(os.environ.get("HPSEARCH_DATA_DIR", "data"))
    return Mode("cuda", data, 60.0, (1, 2, 4), 4, 4, None, 5)


def cpu_mode() -> Mode:
    """A smoke run of every step on the CPU with the committed test subset."""
    return Mode("cpu", ROOT / "tests" / "data", 2.0, (1, 2), 1, 1, (2400, 600), 1)


def hpsearch(*args: str, capture: bool = False) -> str:
    """The real CLI; its output when asked, else discarded."""
    cmd = [sys.executable, "-m", "hpsearch", *args]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return done.stdout if capture else ""


def study_file(name: str, mode: Mode, folder: Path) -> Path:
    """The shipped study file, with the train/valid sizes of the test subset in CPU mode."""
    text = (ROOT / "studies" / f"{name}.toml").read_text()
    if mode.mnist_sizes is not None and "train_size" in text:
        train, valid = mode.mnist_sizes
        text = text.replace("train_size = 48000", f"train_size = {train}")
        text = text.replace("valid_size = 12000", f"valid_size = {valid}")
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def epoch_times(mode: Mode) -> list[str]:
    """Seconds per training epoch of the mnist-reg MLP (BatchNorm) at each batch size."""
    import torch

    from hpsearch.objectives._data import mnist_splits
    from hpsearch.objectives._mnist import build_mlp
    from hpsearch.objectives._train import FitConfig, resolve_device, train_epoch
    from hpsearch.spec import load_spec

    spec = load_spec(str(study_file("mnist-reg", mode, Path(tempfile.mkdtemp()))))
    device = resolve_device(mode.device)
    splits = mnist_splits(spec.data, mode.data_dir, device)
    rows = []
    for batch in BATCHES:
        model = build_mlp(spec.model.hidden, True, 0.0).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        cfg = FitConfig(max_epochs=2, batch_size=batch, patience=2, seed=0)
        generator = torch.Generator().manual_seed(0)
        train_epoch(model, optimizer, splits, cfg, generator)  # warm-up: kernels, allocator
        sync(device)
        start = time.perf_counter()
        train_epoch(model, optimizer, splits, cfg, generator)
        sync(device)
        rows.append(f"| {batch} | {time.perf_counter() - start:.2f} |")
    return ["| batch | seconds per epoch |", "|---|---|", *rows]


def sync(device: object) -> None:
    """Wait for queued GPU work, so the clock measures it."""
    import torch

    if getattr(device, "type", "") == "cuda":
        torch.cuda.synchronize()


def packed(mode: Mode, folder: Path) -> tuple[list[str], str]:
    """Trials per minute of mnist-reg with 1, 2, 4 workers on one GPU; the first study's URL."""
    rows = [
        "| workers on the GPU | finished trials | minutes | trials per minute |",
        "|---|---|---|---|",
    ]
    first = ""
    for workers in mode.packings:
        url = f"sqlite:///{folder / f'packed-{workers}.db'}"
        first = first or url
        place = ["--workers", "1", "--device", mode.device]
        if mode.device == "cuda" and workers > 1:
            place = ["--gpus", "0", "--workers-per-gpu", str(workers)]
        elif workers > 1:
            place = ["--workers", str(workers), "--threads", "1", "--device", "cpu"]
        study = str(study_file("mnist-reg", mode, folder))
        start = time.perf_counter()
        hpsearch("run", "--study", study, "--trials", "1000", "--storage", url,
                 "--data-dir", str(mode.data_dir), "--timeout", str(mode.study_seconds),
                 "--max-epochs", str(mode.mnist_epochs), "--no-progress", *place)  # fmt: skip
        minutes = (time.perf_counter() - start) / 60
        stored = optuna.load_study(study_name="mnist-reg", storage=url).trials
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in stored)
        rows.append(f"| {workers} | {done} | {minutes:.2f} | {done / minutes:.1f} |")
    return rows, first


def rerun_line(mode: Mode, folder: Path, url: str) -> str:
    """Whether `hpsearch rerun` reproduces the first completed trial on the same device."""
    stored = optuna.load_study(study_name="mnist-reg", storage=url).trials
    complete = [t.number for t in stored if t.state.name == "COMPLETE"]
    if not complete:
        return "rerun: no completed trial to rerun"
    study = str(study_file("mnist-reg", mode, folder))
    where = ["--data-dir", str(mode.data_dir), "--device", mode.device]
    out = hpsearch(
        "rerun", "--study", study, "--trial", str(complete[0]), "--storage", url, *where,
        capture=True,
    )  # fmt: skip
    return f"rerun of trial #{complete[0]}: {out.strip().splitlines()[-1]}"


def flowers_line(mode: Mode, folder: Path) -> str:
    """A short flowers-narrow study: trials, wall time and its best validation accuracy."""
    url = f"sqlite:///{folder / 'flowers.db'}"
    study = str(study_file("flowers-narrow", mode, folder))
    start = time.perf_counter()
    hpsearch("run", "--study", study, "--trials", str(mode.flowers_trials), "--storage", url,
             "--data-dir", str(mode.data_dir), "--max-epochs", str(mode.flowers_epochs),
             "--device", mode.device, "--workers", "1", "--no-progress")  # fmt: skip
    loaded = optuna.load_study(study_name="flowers-narrow", storage=url)
    return (
        f"flowers-narrow: {mode.flowers_trials} trials x {mode.flowers_epochs} epochs in "
        f"{time.perf_counter() - start:.0f} s, best validation accuracy {loaded.best_value:.4f}"
    )


def main() -> None:
    """Run every step and print the block."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cpu", action="store_true", help="tiny, on the CPU (CI's smoke run)")
    args = parser.parse_args()
    mode = cpu_mode() if args.cpu else gpu_mode()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("HPSEARCH_CACHE_DIR", str(folder / "cache"))
        lines = ["mnist-reg MLP, BatchNorm, one training epoch (after a warm-up epoch):", ""]
        lines += epoch_times(mode)
        rows, url = packed(mode, folder)
        lines += [
            "",
            f"mnist-reg, trials of at most {mode.mnist_epochs} epochs, new trials "
            f"started for {mode.study_seconds:.0f} s per setting:",
            "",
            *rows,
            "",
        ]
        lines += [rerun_line(mode, folder, url), "", flowers_line(mode, folder)]
    import torch

    where = torch.cuda.get_device_name(0) if mode.device == "cuda" else "CPU (smoke run)"
    head = f"### GPU check: {where}, torch {torch.__version__}"
    took = time.perf_counter() - started
    tail = f"(benchmarks/gpu_check.sh{' --cpu' if args.cpu else ''}: {took:.0f} s)"
    print("\n".join(["```markdown", head, "", *lines, "", tail, "```"]))


if __name__ == "__main__":
    main()
