"""`hpsearch.fit`: hpsearch's own training loop for a classifier on tensors, for any objective."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hpsearch import _keys

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hpsearch.objectives._context import TrialContext


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    ctx: TrialContext,
    *,
    batch_size: int = 128,
    patience: int = 3,
    early_stopping: str = "valid_loss",
    l1: float = 0.0,
    schedule: str = "constant",
    mixup: float = 0.0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Train a classifier with cross-entropy on whole tensors, reporting every epoch to `ctx`.

    Batches are drawn by a seeded permutation of the tensors (no DataLoader); training stops
    after `patience` epochs without a better validation loss (or accuracy, with
    `early_stopping`), or at ``ctx.max_epochs``, and the best epoch's weights are restored in
    `model`. Each epoch reports ``train_loss``,
    ``valid_loss`` and ``valid_accuracy`` through ``ctx.report`` (so the pruner can stop it):
    use one of the last two as the study's ``objective.metric``.

    Args:
        model: The network, already on ``ctx.device``; it maps a batch of inputs to logits.
        optimizer: An optimizer over the model's parameters.
        train: Training inputs and integer class labels, on ``ctx.device``.
        valid: Validation inputs and labels, on ``ctx.device``.
        ctx: The trial's context.
        batch_size: Examples per training step.
        patience: Epochs without a better best epoch before stopping.
        early_stopping: ``"valid_loss"`` (lowest wins) or ``"valid_accuracy"`` (highest wins):
            what picks the best epoch, whose weights are restored and whose metric is returned.
        l1: Weight of an L1 penalty on the weights (0: none).
        schedule: ``"constant"``, or ``"cosine"`` to decay the learning rate to 0.
        mixup: Beta(a, a) parameter for blending each batch with a shuffled copy (0: off).
        augment: A function applied to each training batch of inputs.

    Returns:
        The study's metric at the restored best epoch.

    Example:
        >>> def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float:
        ...     model = make_net(params["width"]).to(ctx.device)
        ...     optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
        ...     return hpsearch.fit(model, optimizer, train, valid, ctx, batch_size=64)
    """
    from hpsearch.objectives import _train
    from hpsearch.objectives._data import Splits

    splits = Splits(train[0], train[1], valid[0], valid[1], classes=())
    cfg = _train.FitConfig(
        ctx.max_epochs,
        batch_size,
        patience,
        ctx.seed,
        l1,
        schedule,
        mixup=mixup,
        early_stopping=early_stopping,
    )

    def report(stats: _train.EpochStats) -> None:
        metrics = stats.as_dict()
        ctx.report(int(metrics.pop("epoch")), **metrics)

    result = _train.fit(model, optimizer, splits, cfg, report, augment)
    ctx.trial.set_user_attr(_keys.BEST_EPOCH, result.best.epoch)
    return float(getattr(result.best, ctx.metric))
