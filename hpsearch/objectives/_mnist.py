"""The regularized MLP on MNIST: Linear → LeakyReLU → (BatchNorm1d | Dropout) blocks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpsearch.spec import StudySpec, TrainingSpec

if TYPE_CHECKING:
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


def build(spec: StudySpec, hp: TrainingSpec, n_classes: int) -> nn.Module:
    """The study's MLP for one trial's hyperparameters."""
    return build_mlp(
        spec.model.hidden, hp.batch_norm, hp.dropout, spec.model.negative_slope, hp.init
    )
