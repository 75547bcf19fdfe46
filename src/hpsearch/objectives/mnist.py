"""The regularized MLP on MNIST: Linear → LeakyReLU → (BatchNorm1d | Dropout) blocks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from hpsearch.data import mnist_splits
from hpsearch.objectives.base import suggest, train_trial, trial_seed
from hpsearch.spec import StudySpec

if TYPE_CHECKING:
    import torch
    from torch import nn

N_IN, N_OUT = 28 * 28, 10


def build_mlp(
    hidden: tuple[int, ...],
    batch_norm: bool,
    dropout: float,
    negative_slope: float = 0.01,
    init: str = "he",
) -> nn.Sequential:
    """The classic regularized MLP; BatchNorm replaces dropout in a block when it is on."""
    from torch import nn

    layers: list[nn.Module] = []
    width = N_IN
    for size in hidden:
        layers += [nn.Linear(width, size), nn.LeakyReLU(negative_slope)]
        layers.append(nn.BatchNorm1d(size) if batch_norm else nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, N_OUT))
    model = nn.Sequential(*layers)
    init_weights(model, init, negative_slope)
    return model


def init_weights(model: nn.Module, init: str, negative_slope: float) -> None:
    """He (Kaiming) or Xavier initialization of every Linear layer, zero biases."""
    from torch import nn

    for module in model.modules():
        if isinstance(module, nn.Linear):
            if init == "xavier":
                gain = nn.init.calculate_gain("leaky_relu", negative_slope)
                nn.init.xavier_uniform_(module.weight, gain=gain)
            else:
                nn.init.kaiming_normal_(module.weight, a=negative_slope, nonlinearity="leaky_relu")
            nn.init.zeros_(module.bias)


def make_objective(
    spec: StudySpec, data_dir: Path, device: torch.device
) -> Callable[[optuna.Trial], float]:
    """Load MNIST once, then return the define-by-run objective for this study."""
    import torch

    splits = mnist_splits(spec.data, data_dir, device)

    def objective(trial: optuna.Trial) -> float:
        hp = suggest(trial, spec)
        seed = trial_seed(spec.seed, trial.number)
        torch.manual_seed(seed)
        model = build_mlp(
            spec.model.hidden, hp.batch_norm, hp.dropout, spec.model.negative_slope, hp.init
        ).to(device)
        return train_trial(trial, spec, hp, model, splits, seed, device)

    return objective
