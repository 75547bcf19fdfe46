"""Where the mnist-reg training step spends the time its matrix products do not, on CPU.

    python benchmarks/step_breakdown.py [--batch 128] [--threads 1] [--steps 20] [--rounds 9]

Times, interleaved over rounds (median ms per step, and matmuls / step):

- matmuls: the step's matrix products alone (as in step_cost.py);
- plain loops over the same MLP (Linear → LeakyReLU → BatchNorm1d / hpsearch's Dropout / nothing),
  with and without the fused Adam step, to split the step's extra time into the optimizer, the
  regularizer and the rest;
- hpsearch's own `train_epoch` step (the figure step_cost.py reports);
- fused blocks: each Linear → LeakyReLU → BatchNorm/Dropout block as one autograd Function with
  a hand-written backward (one autograd node and a handful of operator calls per block instead
  of three modules), which hpsearch does not do: it tells whether autograd's and the modules'
  own overhead is what stands between the step and its matrix products.

The fused blocks are checked against the modules first (same loss and gradients, bit for bit).
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from step_cost import SPEC, matmuls, per_step_ms, training
from torch import nn

from hpsearch.objectives import _mnist
from hpsearch.objectives._train import make_optimizer

aten = torch.ops.aten
Timed = Callable[[], None]


class BatchNormBlock(torch.autograd.Function):
    """Linear → LeakyReLU → BatchNorm1d (training) in one node, backward by hand."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, *rest: Any) -> Any:
        """addmm, LeakyReLU in place, then torch's native batch norm (running stats updated)."""
        gamma, beta, bn, slope = rest
        z = aten.leaky_relu_(torch.addmm(b, x, w.t()), slope)
        y, mean, invstd = aten.native_batch_norm(
            z, gamma, beta, bn.running_mean, bn.running_var, True, bn.momentum, bn.eps
        )
        ctx.save_for_backward(x, w, z, gamma, mean, invstd)
        ctx.slope, ctx.eps = slope, bn.eps
        return y

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> Any:
        """Batch norm's native backward, LeakyReLU's, then the two matrix products."""
        x, w, z, gamma, mean, invstd = ctx.saved_tensors
        gz, ggamma, gbeta = aten.native_batch_norm_backward(
            grads[0], z, gamma, None, None, mean, invstd, True, ctx.eps, [True, True, True]
        )
        gz = aten.leaky_relu_backward(gz, z, ctx.slope, True)
        gx = torch.mm(gz, w) if ctx.needs_input_grad[0] else None
        return gx, torch.mm(gz.t(), x), gz.sum(0), ggamma, gbeta, None, None


class DropoutBlock(torch.autograd.Function):
    """Linear → LeakyReLU → hpsearch's dropout mask in one node, backward by hand."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, *rest: Any) -> Any:
        """addmm, LeakyReLU in place, times hpsearch's scaled keep mask."""
        p, slope = rest
        z = aten.leaky_relu_(torch.addmm(b, x, w.t()), slope)
        mask = _mnist.keep_mask(z, p)
        ctx.save_for_backward(x, w, z, mask)
        ctx.slope = slope
        return z * mask

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> Any:
        """The mask, LeakyReLU's backward, then the two matrix products."""
        x, w, z, mask = ctx.saved_tensors
        gz = aten.leaky_relu_backward(grads[0] * mask, z, ctx.slope, True)
        gx = torch.mm(gz, w) if ctx.needs_input_grad[0] else None
        return gx, torch.mm(gz.t(), x), gz.sum(0), None, None


class Fused(nn.Module):
    """hpsearch's MLP (the same parameters) run through the fused blocks while training."""

    def __init__(self, mlp: nn.Sequential) -> None:
        super().__init__()
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each block as one autograd node, then the output layer."""
        layers = list(self.mlp)
        for lin, act, reg in zip(layers[:-1:3], layers[1::3], layers[2::3], strict=True):
            slope = act.negative_slope
            if isinstance(reg, nn.BatchNorm1d):
                x = BatchNormBlock.apply(x, lin.weight, lin.bias, reg.weight, reg.bias, reg, slope)
            else:
                x = DropoutBlock.apply(x, lin.weight, lin.bias, reg.p, slope)
        out: torch.Tensor = layers[-1](x)
        return out


def mlp(regularizer: str) -> nn.Sequential:
    """The shipped MLP with BatchNorm ('bn'), dropout 0.3 ('dropout') or neither ('none')."""
    model = _mnist.build_mlp(SPEC.model.hidden, regularizer == "bn", 0.3)
    if regularizer == "none":
        model = nn.Sequential(*[m for m in model if not isinstance(m, nn.Dropout)])
    return model


def loop(model: nn.Module, batch: int, steps: int, optimize: bool) -> Timed:
    """`steps` plain steps (forward, cross-entropy, backward, optionally Adam) on random data."""
    optimizer = make_optimizer("adam", model.parameters(), 1e-3, 1e-5, 0.0)
    images, labels = torch.randn(batch * steps, _mnist.N_IN), torch.randint(0, 10, (batch * steps,))

    def run() -> None:
        for i in range(steps):
            rows = slice(i * batch, (i + 1) * batch)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images[rows]), labels[rows]).backward()  # type: ignore[no-untyped-call]
            if optimize:
                optimizer.step()

    return run


def check_fused() -> None:
    """The fused blocks give the modules' loss and gradients exactly, or the script stops."""
    for regularizer in ("bn", "dropout"):
        torch.manual_seed(1)
        modules = mlp(regularizer)
        fused = Fused(copy.deepcopy(modules))
        x, y = torch.randn(64, _mnist.N_IN), torch.randint(0, 10, (64,))
        losses = []
        for model in (modules, fused):
            torch.manual_seed(5)  # the same dropout masks
            loss = F.cross_entropy(model(x), y)
            loss.backward()  # type: ignore[no-untyped-call]
            losses.append(loss.item())
        grads = zip(modules.parameters(), fused.parameters(), strict=True)
        assert losses[0] == losses[1] and all(torch.equal(a.grad, b.grad) for a, b in grads)


def variants(batch: int, steps: int) -> dict[str, Timed]:
    """Every timed variant, in the order printed."""
    torch.manual_seed(0)
    timed: dict[str, Timed] = {"matmuls": matmuls(batch, steps)}
    for regularizer in ("none", "bn", "dropout"):
        for optimize in (False, True):
            name = f"{regularizer}, {'with' if optimize else 'no'} Adam step"
            timed[name] = loop(mlp(regularizer), batch, steps, optimize)
    for regularizer in ("bn", "dropout"):
        timed[f"hpsearch train_epoch, {regularizer}"] = training(
            batch, steps, regularizer == "bn", False
        )
        timed[f"fused blocks, {regularizer}"] = loop(Fused(mlp(regularizer)), batch, steps, True)
    return timed


def main() -> None:
    """Check the fused blocks, time every variant, print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    check_fused()
    print(f"batch {args.batch}, {args.threads} thread(s); fused blocks match the modules exactly")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    timed = variants(args.batch, args.steps)
    for run in timed.values():
        run()  # warm-up: allocations, the optimizer's state
    times: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(args.rounds):
        for name, run in timed.items():
            times[name].append(per_step_ms(run, args.steps)[0])
    base = statistics.median(times["matmuls"])
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"  {name:32s} {ms:6.2f} ms/step   matmuls/step {base / ms:.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
