"""A small CNN on the 5-class flower photos, with every regularizer as a search option."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hpsearch.spec import StudySpec, TrainingSpec

MAX_ROTATION_DEG = 10.0
MAX_SHIFT = 0.1  # of the image's width
CL = torch.channels_last


class GaussianNoise(nn.Module):
    """Adds N(0, std²) noise between layers in train(); passes input through in eval()."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Noise only while training."""
        if not self.training or self.std == 0:
            return x
        return x + standard_normal_like(x) * self.std

    def extra_repr(self) -> str:
        """Shown in print(model)."""
        return f"std={self.std}"


def standard_normal_like(x: torch.Tensor) -> torch.Tensor:
    """N(0, 1) noise in x's shape and memory layout, drawn into a dense buffer.

    On CPU, randn_like on a channels-last tensor takes torch's scalar path, about 7x slower
    than filling a contiguous buffer (benchmarks/noise_cost.py); the values are i.i.d., so the
    buffer's order is free.
    """
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=CL):
        n, c, h, w = x.shape
        return torch.randn(n, h, w, c, dtype=x.dtype, device=x.device).permute(0, 3, 1, 2)
    return torch.randn(x.shape, dtype=x.dtype, device=x.device)


class ChannelsLast(nn.Module):
    """Puts each batch in NHWC layout: oneDNN's convolutions and pooling run ~1.5x faster."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """A no-op when the batch is already channels-last."""
        return x.contiguous(memory_format=torch.channels_last)


class FlipAveraged(nn.Sequential):
    """In eval(), averages the logits of each image and its mirror; trains as a plain stack.

    A Sequential itself (not a wrapper), so its weights load into and from the plain model.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Both orientations at evaluation: flip is in the augmentation, so both are in-domain."""
        if self.training:
            return self.through(x)
        return (self.through(x) + self.through(x.flip(3))) / 2

    def through(self, x: torch.Tensor) -> torch.Tensor:
        """Sequential's forward, typed."""
        for layer in self:
            x = layer(x)
        return x


def build_cnn(
    channels: tuple[int, ...],
    n_classes: int,
    batch_norm: bool,
    dropout: float,
    noise_std: float,
    convs_per_block: int = 1,
    flip_average: bool = False,
    residual: bool = False,
    stem_stride: int = 1,
) -> nn.Sequential:
    """convs_per_block conv units, then max-pool per block; the last block average-pools."""
    layers: list[nn.Module] = [ChannelsLast()]
    width = 3
    for i, out in enumerate(channels):
        stride = stem_stride if i == 0 else 1
        if residual:
            layers.append(ResidualBlock(width, out, batch_norm, noise_std, convs_per_block, stride))
        else:
            layers += conv_chain(width, out, batch_norm, noise_std, convs_per_block, stride)
        width = out
        last = i == len(channels) - 1
        layers.append(nn.AdaptiveAvgPool2d(1) if last else nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, n_classes)]
    stack = FlipAveraged if flip_average else nn.Sequential
    model = stack(*layers).to(memory_format=torch.channels_last)
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def conv_chain(
    width: int,
    out: int,
    batch_norm: bool,
    noise_std: float,
    convs: int,
    stride: int = 1,
    activate_last: bool = True,
) -> list[nn.Module]:
    """`convs` conv units from width to out channels; only the first one strides."""
    layers: list[nn.Module] = []
    for j in range(convs):
        last = j == convs - 1
        layers += conv_unit(
            out if j else width,
            out,
            batch_norm,
            noise_std,
            1 if j else stride,
            activate_last or not last,
        )
    return layers


def conv_unit(
    width: int, out: int, batch_norm: bool, noise_std: float, stride: int = 1, relu: bool = True
) -> list[nn.Module]:
    """One conv3x3 → [BN] → ReLU → [noise]; BN makes the conv's bias redundant."""
    layers: list[nn.Module] = [
        nn.Conv2d(width, out, 3, stride=stride, padding=1, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out))
    return layers + (activation(noise_std) if relu else [])


def activation(noise_std: float) -> list[nn.Module]:
    """ReLU, then Gaussian noise when its std is positive."""
    return [nn.ReLU(), *([GaussianNoise(noise_std)] if noise_std > 0 else [])]


class ResidualBlock(nn.Module):
    """ReLU(convs(x) + shortcut(x)), then noise: the skip path eases training deeper stacks."""

    def __init__(
        self, width: int, out: int, batch_norm: bool, noise_std: float, convs: int, stride: int
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_chain(width, out, batch_norm, noise_std, convs, stride, activate_last=False)
        )
        self.shortcut: nn.Sequential | nn.Identity = nn.Identity()
        if width != out or stride != 1:
            short = [SubsampledPointwise(width, out, stride, bias=not batch_norm)]
            self.shortcut = nn.Sequential(*short, *([nn.BatchNorm2d(out)] if batch_norm else []))
        self.after = nn.Sequential(*activation(noise_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convs' output plus the (projected) input."""
        out: torch.Tensor = self.after(self.body(x) + self.shortcut(x))
        return out


class SubsampledPointwise(nn.Conv2d):
    """A 1x1 conv with a stride, computed as every stride-th pixel, then a 1x1 conv.

    The same numbers and weights as nn.Conv2d(width, out, 1, stride=stride), but torch 2.14.1's
    CPU kernel for a strided 1x1 conv on channels-last images corrupts memory in backward
    (SIGSEGV or glibc abort once batch sizes vary), killing the trial's process.
    """

    def __init__(self, width: int, out: int, stride: int, bias: bool) -> None:
        super().__init__(width, out, 1, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample first, so the conv itself is unstrided."""
        step = self.stride[0]
        return F.conv2d(x[:, :, ::step, ::step], self.weight, self.bias)


def augment_batch(x: torch.Tensor, zoom: float = 0.0, jitter: float = 0.0) -> torch.Tensor:
    """Random flip, small rotation and shift, optional zoom-in and colour jitter, batched."""
    n = x.shape[0]
    if jitter:  # no extra draw without it, so earlier trials rerun bit-identically
        x = colour_jitter(x, jitter)
    flip = torch.rand(n, device=x.device) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    angle = (torch.rand(n, device=x.device) * 2 - 1) * math.radians(MAX_ROTATION_DEG)
    shift = (torch.rand(n, 2, device=x.device) * 2 - 1) * (2 * MAX_SHIFT)
    cos, sin = torch.cos(angle), torch.sin(angle)
    if zoom:  # no extra draw without it, so earlier trials rerun bit-identically
        scale = 1 - torch.rand(n, device=x.device) * zoom
        cos, sin = cos * scale, sin * scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


def colour_jitter(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Per-image brightness, contrast and saturation factors in 1 ± strength."""
    n = x.shape[0]
    factors = 1 + (torch.rand(n, 3, 1, 1, 1, device=x.device) * 2 - 1) * strength
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * factors[:, 0]  # saturation: away from / towards the grey image
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * factors[:, 1]  # contrast around the image's mean
    return x + (factors[:, 2] - 1)  # brightness, in units of the normalized pixels' std


def build(spec: StudySpec, hp: TrainingSpec, n_classes: int) -> nn.Module:
    """The study's CNN for one trial's hyperparameters."""
    model = spec.model
    return build_cnn(
        model.channels,
        n_classes,
        hp.batch_norm,
        hp.dropout,
        hp.noise_std,
        model.convs_per_block,
        model.flip_average,
        model.residual,
        model.stem_stride,
    )


def augment(hp: TrainingSpec) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """Random flips, shifts and rotations of each training batch when `augment` is on."""
    return augment_batch if hp.augment else None
