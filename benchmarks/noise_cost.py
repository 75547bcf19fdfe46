"""What Gaussian noise injection costs per training step on CPU, and why it is drawn as it is.

    python benchmarks/noise_cost.py [--batches 20] [--repeats 5]

One training step (forward, backward, Adam) of the flowers-narrow CNN (16-32-64-128, BatchNorm,
channels-last) on a batch of 64 random 64x64 images, in three variants interleaved in the same
run: no noise; noise from hpsearch's GaussianNoise (standard_normal_like: a dense buffer viewed
in the activation's layout); and the baseline, torch.randn_like on the channels-last
activation. Prints the median milliseconds per step and the ratios, then the draw alone.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.objectives._flowers import GaussianNoise, build_cnn, standard_normal_like

CHANNELS = (16, 32, 64, 128)


class RandnLikeNoise(GaussianNoise):
    """The baseline: the textbook x + randn_like(x) * std."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """randn_like keeps the channels-last layout and, on CPU, its slow path."""
        return x + torch.randn_like(x) * self.std if self.training else x


def step_ms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batches: int) -> float:
    """Mean milliseconds of one training step, after two warm-up steps."""
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for i in range(batches + 2):
        if i == 2:
            started = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return (time.perf_counter() - started) / batches * 1000


def variants() -> dict[str, Callable[[], nn.Module]]:
    """The three models, built from one seed so only the noise layers differ."""

    def with_noise(layer: type[GaussianNoise] | None) -> nn.Module:
        torch.manual_seed(0)
        model = build_cnn(CHANNELS, 5, True, 0.0, 0.1 if layer else 0.0)
        if layer is RandnLikeNoise:
            for i, module in enumerate(model):
                if isinstance(module, GaussianNoise):
                    model[i] = RandnLikeNoise(module.std)
        return model

    return {
        "no noise": lambda: with_noise(None),
        "noise, hpsearch (dense buffer)": lambda: with_noise(GaussianNoise),
        "noise, randn_like (baseline)": lambda: with_noise(RandnLikeNoise),
    }


def main() -> None:
    """Interleave the variants `repeats` times and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(64, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (64,))
    times: dict[str, list[float]] = {name: [] for name in variants()}
    for _ in range(args.repeats):
        for name, build in variants().items():
            times[name].append(step_ms(build(), x, y, args.batches))
    base = statistics.median(times["no noise"])
    print(f"threads={torch.get_num_threads()}, batch 64, 64x64, conv {CHANNELS}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name}: {median:.0f} ms/step ({median / base:.2f}x no noise)")
    old = statistics.median(times["noise, randn_like (baseline)"])
    new = statistics.median(times["noise, hpsearch (dense buffer)"])
    print(f"speed-up of hpsearch's noise over randn_like: {old / new:.2f}x per step")
    sampling_only()


def sampling_only(repeats: int = 10) -> None:
    """Only the draw, for the first layer's activation (64 x 16 x 64 x 64, channels-last)."""
    act = torch.zeros(64, 16, 64, 64).contiguous(memory_format=torch.channels_last)
    timed = {"randn_like": torch.randn_like, "standard_normal_like": standard_normal_like}
    ms = {}
    for name, draw in timed.items():
        draw(act)
        started = time.perf_counter()
        for _ in range(repeats):
            draw(act)
        ms[name] = (time.perf_counter() - started) / repeats * 1000
    ratio = ms["randn_like"] / ms["standard_normal_like"]
    print(
        f"one draw of 4.2M normals: randn_like {ms['randn_like']:.1f} ms, "
        f"standard_normal_like {ms['standard_normal_like']:.1f} ms ({ratio:.1f}x)"
    )


if __name__ == "__main__":
    main()
