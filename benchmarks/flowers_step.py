"""Can one flowers training step on CPU go faster than eager fp32? torch.compile and bf16, timed.

    OMP_NUM_THREADS=1 python benchmarks/flowers_step.py [--batches 10] [--repeats 3]

One training step (augmentation, forward, backward, SGD with momentum) of flowers-narrow's CNN
(2x(16-32-64-128), BatchNorm, noise std 0.027, channels-last) on a batch of 64 random 64x64
images, in three variants interleaved in the same run: eager fp32 (the baseline, what hpsearch
does), `torch.compile` (its compile time printed separately), and eager under bf16 autocast.
Prints the median milliseconds per step, each variant's ratio to eager, and the arithmetic rate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.objectives._flowers import augment_batch, build_cnn

CHANNELS = (16, 32, 64, 128)


def make() -> nn.Module:
    """flowers-narrow's model, from one seed."""
    torch.manual_seed(0)
    return build_cnn(CHANNELS, 5, True, 0.0, 0.027, 2)


def step_ms(
    model: Callable[[torch.Tensor], torch.Tensor], params: nn.Module, batches: int, bf16: bool
) -> float:
    """Mean milliseconds of one training step, after two warm-up steps."""
    x, y = torch.randn(64, 3, 64, 64), torch.randint(0, 5, (64,))
    optimizer = torch.optim.SGD(params.parameters(), 0.05, momentum=0.9)
    params.train()
    started = time.perf_counter()
    for i in range(batches + 2):
        if i == 2:
            started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(augment_batch(x)), y)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return (time.perf_counter() - started) / batches * 1000


def gflop_per_step(model: nn.Module) -> float:
    """Forward multiply-adds of the convs and the classifier, x2 for FLOPs, x3 with backward."""
    macs: list[int] = []

    def count(module: nn.Module, args: object, out: torch.Tensor) -> None:
        assert isinstance(module, nn.Conv2d | nn.Linear)
        macs.append(out.numel() * module.weight[0].numel())

    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    hooks = [m.register_forward_hook(count) for m in layers]
    with torch.no_grad():
        model.eval()(torch.randn(64, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    return 2 * 3 * sum(macs) / 1e9


def main() -> None:
    """Interleave the variants `repeats` times and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    eager, amp, compiled_params = make(), make(), make()
    started = time.perf_counter()
    compiled = torch.compile(compiled_params)
    step_ms(compiled, compiled_params, 1, False)
    print(f"torch.compile: first step (compilation) {time.perf_counter() - started:.0f} s")
    times: dict[str, list[float]] = {"eager fp32": [], "torch.compile": [], "bf16 autocast": []}
    for _ in range(args.repeats):
        times["eager fp32"].append(step_ms(eager, eager, args.batches, False))
        times["torch.compile"].append(step_ms(compiled, compiled_params, args.batches, False))
        times["bf16 autocast"].append(step_ms(amp, amp, args.batches, True))
    base = statistics.median(times["eager fp32"])
    flop = gflop_per_step(make())
    print(f"{torch.get_num_threads()} thread(s); {flop:.1f} GFLOP per step (convs and linear)")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"{name}: {ms:.0f} ms/step, {ms / base:.2f}x eager, {flop / ms * 1000:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
