"""One training loop for every objective: batches by index permutation, early stopping, restore."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hpsearch.errors import UsageError, arg

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hpsearch.objectives._data import Splits

EVAL_BATCH = 4096


@dataclass(frozen=True)
class EpochStats:
    """What one epoch (numbered from 1) produced; stored on the trial as its history."""

    epoch: int
    train_loss: float
    valid_loss: float
    valid_accuracy: float
    seconds: float

    def as_dict(self) -> dict[str, float]:
        """Plain numbers for JSON user attributes."""
        return asdict(self)


@dataclass(frozen=True)
class FitConfig:
    """How long and how to train; the optimizer is built by the caller."""

    max_epochs: int
    batch_size: int
    patience: int
    seed: int
    l1: float = 0.0
    schedule: str = "constant"  # or "cosine": the lr follows a half cosine to 0 over max_epochs
    label_smoothing: float = 0.0  # training loss only; validation loss stays plain cross-entropy
    mixup: float = 0.0  # Beta(a, a) for blending each batch with a shuffled copy; 0: off
    cutmix: float = 0.0  # Beta(a, a) for pasting a box from a shuffled copy; 0: off
    early_stopping: str = "valid_loss"  # or "valid_accuracy": picks the best epoch, paces patience


@dataclass(frozen=True)
class FitResult:
    """The restored best epoch and the whole history."""

    best: EpochStats
    history: list[EpochStats]


def resolve_device(name: str) -> torch.device:
    """'auto', 'cpu', 'cuda' or 'cuda:i' to a usable torch device."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:<index>") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise UsageError(
                f"device '{name}' is not available ({count} GPU(s) visible); "
                f"use {arg('device', 'cpu')}"
            )
    elif device.type != "cpu":
        raise UsageError(f"unsupported device '{name}'; use auto, cpu, cuda or cuda:<index>")
    return device


def set_threads(threads: int | None) -> None:
    """Give this process's torch a fixed thread count (workers share the CPU cores)."""
    if threads is not None and threads < 1:
        raise UsageError(f"{arg('threads')} must be ≥ 1 but got {threads}")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def make_optimizer(
    name: str, params: Any, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    """The named optimizer with weight decay set on it (AdamW's is decoupled from the gradient).

    Torch's fused kernel where it has one: one pass over each tensor instead of a dozen, 4x
    faster for Adam on CPU (benchmarks/step_cost.py); RMSprop has none.
    """
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "momentum":
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=True
        )
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: FitConfig
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch lr decay: a cosine schedule settles noisy short runs; constant needs none."""
    import torch

    if cfg.schedule == "constant":
        return None
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.max_epochs)
    raise UsageError(f"unknown schedule '{cfg.schedule}'; use constant or cosine")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy in eval mode (running BN stats, no dropout)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(x), EVAL_BATCH):
            logits = model(x[start : start + EVAL_BATCH])
            target = y[start : start + EVAL_BATCH]
            loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
            correct += int((logits.argmax(1) == target).sum().item())
    return loss_sum / len(x), correct / len(x)


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of absolute weights (biases and norm parameters excluded)."""
    return sum(
        (
            p.abs().sum()
            for n, p in model.named_parameters()
            if n.endswith("weight") and p.dim() > 1
        ),
        start=next(model.parameters()).new_zeros(()),
    )


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    splits: Splits,
    cfg: FitConfig,
    generator: torch.Generator,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """One pass over the shuffled train split; returns the mean training loss."""
    import torch

    model.train()
    n = len(splits.x_train)
    order = torch.randperm(n, generator=generator).to(splits.x_train.device)
    total = torch.zeros((), device=splits.x_train.device)
    for start, stop in batch_bounds(n, cfg.batch_size):
        idx = order[start:stop]
        xb, yb = rows(splits.x_train, idx), rows(splits.y_train, idx)
        if augment is not None:
            xb = augment(xb)
        loss = batch_loss(model, xb, yb, cfg)
        total += loss.detach() * len(idx)
        if cfg.l1 > 0:
            loss = loss + cfg.l1 * l1_penalty(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    return float(total.item()) / n


def rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x[idx], by index_select when x is contiguous: on 2 CPU threads ~10x faster than indexing.

    Indexing keeps another layout (a user's channels-last images); index_select would not.
    """
    return x.index_select(0, idx) if x.is_contiguous() else x[idx]


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Batches of `batch_size`; a last batch of one example joins the one before it.

    BatchNorm cannot normalize a batch of one in training mode (and would crash the trial).
    """
    bounds = [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds[-2:] = [(bounds[-2][0], n)]
    return bounds


def batch_loss(
    model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, cfg: FitConfig
) -> torch.Tensor:
    """Cross-entropy, on a mixed batch when mixup or cutmix is on (blended targets)."""
    import torch.nn.functional as F

    if not (cfg.mixup or cfg.cutmix):  # no draw when off, so earlier runs repeat bit-identically
        return F.cross_entropy(model(xb), yb, label_smoothing=cfg.label_smoothing)
    xb, partner, lam = mix_batch(xb, cfg)
    logits = model(xb)
    own = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
    other = F.cross_entropy(logits, yb[partner], label_smoothing=cfg.label_smoothing)
    return lam * own + (1 - lam) * other


def mix_batch(xb: torch.Tensor, cfg: FitConfig) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Blend (mixup) or paste a box into (cutmix) each image from a shuffled partner."""
    import torch

    if cfg.mixup and cfg.cutmix:
        raise UsageError("mixup and cutmix are both set; choose one of them")
    if cfg.cutmix and xb.dim() != 4:
        raise UsageError(
            f"cutmix needs image batches (N, C, H, W) but got shape {tuple(xb.shape)}; "
            "use mixup for flat inputs"
        )
    alpha = cfg.mixup or cfg.cutmix
    # float32 (whose draws earlier runs repeat) unless alpha is below its range, where it is 0
    dtype = torch.float64 if alpha < torch.finfo(torch.float32).tiny else torch.float32
    concentration = torch.tensor(alpha, dtype=dtype)
    lam = float(torch.distributions.Beta(concentration, concentration).sample())
    partner = torch.randperm(len(xb), device=xb.device)
    if cfg.mixup:
        return lam * xb + (1 - lam) * xb[partner], partner, lam
    h, w = xb.shape[-2:]
    cut_h, cut_w = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
    top = int(torch.randint(0, h - cut_h + 1, ()))
    left = int(torch.randint(0, w - cut_w + 1, ()))
    box = (..., slice(top, top + cut_h), slice(left, left + cut_w))
    mixed = xb.clone()
    mixed[box] = xb[box][partner]  # gather only the box, not the partner's whole image
    return mixed, partner, 1 - cut_h * cut_w / (h * w)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    splits: Splits,
    cfg: FitConfig,
    on_epoch: Callable[[EpochStats], None],
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> FitResult:
    """Train with early stopping and restore the best epoch's weights.

    The best epoch is the lowest validation loss, or the highest validation accuracy with
    `cfg.early_stopping = "valid_accuracy"`; training stops `cfg.patience` epochs after it.
    `on_epoch` runs after every epoch (report, record, prune); an exception from it, such as
    optuna.TrialPruned, stops training and propagates.
    """
    import torch

    score = epoch_score(cfg.early_stopping)
    generator = torch.Generator().manual_seed(cfg.seed)
    scheduler = make_scheduler(optimizer, cfg)
    history: list[EpochStats] = []
    best: EpochStats | None = None
    best_state: dict[str, Any] | None = None
    best_score = math.inf
    for epoch in range(1, cfg.max_epochs + 1):
        started = time.perf_counter()
        train_loss = train_epoch(model, optimizer, splits, cfg, generator, augment)
        if scheduler is not None:
            scheduler.step()
        valid_loss, valid_acc = evaluate(model, splits.x_valid, splits.y_valid)
        stats = EpochStats(epoch, train_loss, valid_loss, valid_acc, time.perf_counter() - started)
        history.append(stats)
        if best is None or score(stats) < best_score:  # NaN never beats a finite score
            best, best_state = stats, copy.deepcopy(model.state_dict())
            best_score = score(stats) if math.isfinite(score(stats)) else math.inf
        on_epoch(stats)
        if not math.isfinite(train_loss) or epoch - best.epoch >= cfg.patience:
            break
    assert best is not None and best_state is not None
    model.load_state_dict(best_state)
    return FitResult(best=best, history=history)


def epoch_score(early_stopping: str) -> Callable[[EpochStats], float]:
    """Lower is better: the validation loss, or the validation accuracy negated."""
    if early_stopping == "valid_loss":
        return lambda stats: stats.valid_loss
    if early_stopping == "valid_accuracy":
        return lambda stats: -stats.valid_accuracy
    raise UsageError(
        f"{arg('early_stopping')} must be valid_loss or valid_accuracy but got '{early_stopping}'"
    )
