"""The regularized MLP on MNIST: Linear → LeakyReLU → (BatchNorm1d | Dropout) blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.spec import StudySpec, TrainingSpec

N_IN, N_OUT = 28 * 28, 10
INT64_MIN = -(2**63)


class Dropout(nn.Dropout):
    """nn.Dropout with a mask drawn as 32 random bits per unit on CPU, 2-3x cheaper to draw.

    Torch's CPU bernoulli_ draws a double per unit, one at a time, except on Intel CPUs, where it
    calls MKL (not measured here: benchmarks/step_cost.py ran on AMD). Here each unit is kept
    when its 32 bits fall below round((1 - p)·2³²): Bernoulli(1 - p) to within 2⁻³², scaled by
    1/(1 - p) as in nn.Dropout, from torch's seeded generator (a seeded run repeats exactly).
    Other devices keep torch's fused kernel. No state: the same state_dict keys as nn.Dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The cheap mask while training on CPU; torch's own dropout otherwise."""
        if not self.training or x.device.type != "cpu" or not 0 < self.p < 1:
            return F.dropout(x, self.p, self.training, self.inplace)
        mask = keep_mask(x, self.p)
        return x.mul_(mask) if self.inplace else x * mask


def keep_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """0 or 1/(1 - p) for each unit of x, kept with probability 1 - p: 32 random bits each."""
    n = x.numel()
    words = torch.empty((n + 1) // 2, dtype=torch.int64, device=x.device)
    bits = words.random_(INT64_MIN, None).view(torch.int32)[:n].view(x.shape)  # all 64 bits
    return (bits < keep_below(p)).to(x.dtype).mul_(1 / (1 - p))


def keep_below(p: float) -> int:
    """The int32 threshold a uniform 32-bit draw must fall below to keep its unit."""
    return min(round((1 - p) * 2**32), 2**32 - 1) - 2**31


def build_mlp(
    hidden: tuple[int, ...],
    batch_norm: bool,
    dropout: float,
    negative_slope: float = 0.01,
    init: str = "he",
) -> nn.Sequential:
    """The classic regularized MLP; BatchNorm replaces dropout in a block when it is on."""
    layers: list[nn.Module] = []
    width = N_IN
    for size in hidden:
        layers += [nn.Linear(width, size), nn.LeakyReLU(negative_slope)]
        layers.append(nn.BatchNorm1d(size) if batch_norm else Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, N_OUT))
    model = nn.Sequential(*layers)
    init_weights(model, init, negative_slope)
    return model


def init_weights(model: nn.Module, init: str, negative_slope: float) -> None:
    """He (Kaiming) or Xavier initialization of every Linear layer, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if init == "xavier":
                gain = nn.init.calculate_gain("leaky_relu", negative_slope)
                nn.init.xavier_uniform_(module.weight, gain=gain)
            else:
                nn.init.kaiming_normal_(module.weight, a=negative_slope, nonlinearity="leaky_relu")
            nn.init.zeros_(module.bias)


def build(spec: StudySpec, hp: TrainingSpec, n_classes: int) -> nn.Module:
    """The study's MLP for one trial's hyperparameters."""
    return build_mlp(
        spec.model.hidden, hp.batch_norm, hp.dropout, spec.model.negative_slope, hp.init
    )
