"""One training step of the mnist-reg MLP against its matrix products alone, on CPU.

    python benchmarks/step_cost.py [--batches 32 128 512] [--threads 2 1] [--steps 20]
                                   [--rounds 7] [--parts] [--compile]

For each thread count and batch size, in rounds that interleave the variants (so machine noise
hits them alike), this times:

- matmuls: the step's matrix products alone, on random tensors of the same shapes: per Linear
  layer the forward addmm, the weight gradient gᵀx and (all but the first layer) the input
  gradient gW;
- step: hpsearch's `train_epoch` over `--steps` batches of random 784-pixel inputs, gathered by
  index as hpsearch does, with the model and optimizer hpsearch builds for studies/mnist-reg.toml
  (Adam, lr 1e-3, weight decay 1e-5), with BatchNorm and with dropout 0.3;
- baseline: the same `train_epoch` with what hpsearch used before: torch's nn.Dropout, Adam's
  default (per-tensor for-loop) implementation on CPU, and the batch gathered by x[idx].

`--compile` adds the two steps with the model wrapped in `torch.compile` (the compile time of
its first steps is printed), which hpsearch does not do.

Prints the median milliseconds per step and the ratio matmuls / step (1.0: the step is all
matrix products), by the wall clock and by the process's CPU time (with one thread, the CPU time
is less disturbed by other processes on the cores; with two it counts OpenMP's spinning).
`--parts` then times the pieces of a batch-128 step besides the matmuls.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.objectives import _mnist, _train
from hpsearch.objectives._builtin import hyperparameters
from hpsearch.objectives._data import Splits
from hpsearch.objectives._train import FitConfig, make_optimizer, train_epoch
from hpsearch.spec import load_spec

SPEC = load_spec("mnist-reg")
LR, WEIGHT_DECAY, DROPOUT = 1e-3, 1e-5, 0.3
Timed = Callable[[], None]


def dims() -> list[int]:
    """Widths from the input through the shipped hidden sizes to the 10 classes."""
    return [_mnist.N_IN, *SPEC.model.hidden, _mnist.N_OUT]


def matmuls(batch: int, steps: int) -> Timed:
    """`steps` times the forward and backward matrix products of one step."""
    widths = dims()
    shapes = list(itertools.pairwise(widths))
    weights = [torch.randn(n_out, n_in) for n_in, n_out in shapes]
    biases = [torch.randn(n_out) for _, n_out in shapes]
    inputs = [torch.randn(batch, n_in) for n_in, _ in shapes]
    grads = [torch.randn(batch, n_out) for _, n_out in shapes]

    def run() -> None:
        for _ in range(steps):
            for w, b, x in zip(weights, biases, inputs, strict=True):
                torch.addmm(b, x, w.t())
            for i, (w, x, g) in enumerate(zip(weights, inputs, grads, strict=True)):
                torch.mm(g.t(), x)
                if i > 0:  # the images need no gradient
                    torch.mm(g, w)

    return run


def training(
    batch: int, steps: int, batch_norm: bool, baseline: bool, compiled: bool = False
) -> Timed:
    """`steps` training steps through hpsearch's train_epoch, as hpsearch builds the trial."""
    torch.manual_seed(0)
    params = {"batch_norm": batch_norm, "dropout": 0.0 if batch_norm else DROPOUT}
    hp = hyperparameters(SPEC, {**params, "lr": LR, "weight_decay": WEIGHT_DECAY})
    model = _mnist.build(SPEC, hp, _mnist.N_OUT)
    if compiled:  # torch.compile of the same model (inductor, C++ on CPU); hpsearch does not
        model = torch.compile(model)  # type: ignore[assignment]
    if baseline:
        for i, layer in enumerate(model):
            if isinstance(layer, nn.Dropout):
                model[i] = nn.Dropout(layer.p)  # type: ignore[index]
        optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    else:
        optimizer = make_optimizer(hp.optimizer, model.parameters(), hp.lr, hp.weight_decay, 0.0)
    n = batch * steps
    images, labels = torch.randn(n, _mnist.N_IN), torch.randint(0, 10, (n,))
    splits = Splits(images, labels, images[:0], labels[:0], ())
    cfg, generator = FitConfig(1, batch, 1, 0), torch.Generator().manual_seed(0)

    def run() -> None:
        train_epoch(model, optimizer, splits, cfg, generator)

    def run_as_before() -> None:
        rows, _train.rows = _train.rows, indexed_rows
        try:
            train_epoch(model, optimizer, splits, cfg, generator)
        finally:
            _train.rows = rows

    return run_as_before if baseline else run


def indexed_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """How train_epoch gathered a batch before: advanced indexing."""
    return x[idx]


def per_step_ms(run: Timed, steps: int) -> tuple[float, float]:
    """Wall-clock and CPU milliseconds per step of one timed run."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return (time.perf_counter() - wall) / steps * 1000, (time.process_time() - cpu) / steps * 1000


def compare(
    batch: int, steps: int, rounds: int, compiled: bool = False
) -> dict[str, tuple[float, float]]:
    """Median wall and CPU ms per step of every variant, interleaved over `rounds` rounds."""
    variants = {
        "matmuls": matmuls(batch, steps),
        "step, BatchNorm": training(batch, steps, True, False),
        "step, dropout": training(batch, steps, False, False),
        "baseline, BatchNorm": training(batch, steps, True, True),
        "baseline, dropout": training(batch, steps, False, True),
    }
    if compiled:
        variants["compiled, BatchNorm"] = training(batch, steps, True, False, compiled=True)
        variants["compiled, dropout"] = training(batch, steps, False, False, compiled=True)
    for name, run in variants.items():
        started = time.perf_counter()
        run()  # warm-up: allocations, the optimizer's state, compiling
        if name.startswith("compiled"):
            took = time.perf_counter() - started
            print(f"  {name}: first {steps} steps, compiling included, {took:.1f} s")
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, run in variants.items():
            times[name].append(per_step_ms(run, steps))
    return {name: medians(values) for name, values in times.items()}


def medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median of each column."""
    walls, cpus = zip(*pairs, strict=True)
    return statistics.median(walls), statistics.median(cpus)


def report(threads: int, batch: int, times: dict[str, tuple[float, float]]) -> None:
    """One block of lines per thread count and batch size: wall clock, then CPU time."""
    mm_wall, mm_cpu = times["matmuls"]
    print(f"threads {threads}, batch {batch}: matmuls {mm_wall:.2f} ms (CPU {mm_cpu:.2f} ms)")
    for name, (wall, cpu) in list(times.items())[1:]:
        print(
            f"  {name:20s} {wall:6.2f} ms/step, matmuls/step {mm_wall / wall:.2f}"
            f"   (CPU {cpu:6.2f} ms, {mm_cpu / cpu:.2f})"
        )


def parts(steps: int, rounds: int, batch: int = 128) -> None:
    """The pieces of a step besides the matmuls, each timed alone (median ms per step)."""
    torch.manual_seed(0)
    widths = dims()[1:-1]
    hidden = [torch.randn(batch, w, requires_grad=True) for w in widths]
    grads = [torch.randn(batch, w) for w in widths]
    model = _mnist.build_mlp(SPEC.model.hidden, False, DROPOUT)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    images, order = torch.randn(48000, _mnist.N_IN), torch.randperm(48000)[:batch]
    logits, labels = torch.randn(batch, 10, requires_grad=True), torch.randint(0, 10, (batch,))

    def layers(modules: list[nn.Module]) -> Timed:
        def run() -> None:
            for module, h, g in zip(modules, hidden, grads, strict=True):
                module(h).backward(g)

        return run

    def adam(**kwargs: bool) -> Timed:
        optimizer = torch.optim.Adam(model.parameters(), LR, weight_decay=WEIGHT_DECAY, **kwargs)

        def step() -> None:
            optimizer.step()

        return step

    def masks() -> None:
        for h in hidden:
            _mnist.keep_mask(h, DROPOUT)

    def bernoulli_masks() -> None:  # what torch's dropout draws on CPU
        for h in hidden:
            torch.empty_like(h).bernoulli_(1 - DROPOUT)

    def gather() -> None:
        _train.rows(images, order)

    def gather_as_before() -> None:
        indexed_rows(images, order)

    def loss() -> None:
        F.cross_entropy(logits, labels).backward()  # type: ignore[no-untyped-call]

    pieces: dict[str, Timed] = {
        "Adam, fused (hpsearch)": adam(fused=True),
        "Adam, for-loop (baseline)": adam(foreach=False),
        "Adam, foreach": adam(foreach=True),
        "dropout, hpsearch": layers([_mnist.Dropout(DROPOUT) for _ in widths]),
        "dropout, nn.Dropout": layers([nn.Dropout(DROPOUT) for _ in widths]),
        "  hpsearch's mask alone": masks,
        "  torch's mask (bernoulli_)": bernoulli_masks,
        "BatchNorm1d": layers([nn.BatchNorm1d(w) for w in widths]),
        "LeakyReLU": layers([nn.LeakyReLU(0.01) for _ in widths]),
        "gather (hpsearch)": gather,
        "gather, x[idx] (baseline)": gather_as_before,
        "cross-entropy": loss,
    }
    times: dict[str, list[float]] = {name: [] for name in pieces}
    for _ in range(rounds):
        for name, piece in pieces.items():
            times[name].append(per_step_ms(repeat(piece, steps), steps)[0])
    print(f"threads {torch.get_num_threads()}, batch {batch}: pieces alone (forward and backward)")
    for name, values in times.items():
        print(f"  {name:28s} {statistics.median(values):6.3f} ms/step")


def repeat(run: Timed, times: int) -> Timed:
    """`run` called `times` times."""

    def repeated() -> None:
        for _ in range(times):
            run()

    return repeated


def main() -> None:
    """Every thread count and batch size, then optionally the pieces."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--parts", action="store_true")
    parser.add_argument("--compile", action="store_true", help="also torch.compile'd models")
    args = parser.parse_args()
    print(f"hidden {SPEC.model.hidden}, Adam lr {LR}, weight decay {WEIGHT_DECAY}, p {DROPOUT}")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for batch in args.batches:
            report(threads, batch, compare(batch, args.steps, args.rounds, args.compile))
        if args.parts:
            parts(args.steps, args.rounds)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
