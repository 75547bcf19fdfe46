"""PyTorch Lightning: a callback that reports each validated epoch to hpsearch and prunes.

Lightning runs a sanity-check validation before training, counts epochs from 0, computes the
epoch means of training metrics only after validation, and may validate every n-th epoch or
several times per epoch; `Report` turns all that into one `ctx.report` per validated epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hpsearch.objectives._context import ReportError

try:
    import lightning.pytorch as pl
    from lightning.pytorch.trainer.states import TrainerFn
except ImportError as exc:  # a missing Lightning, not a broken one: say how to install it
    if (exc.name or "").partition(".")[0] != "lightning":
        raise
    raise ModuleNotFoundError(
        "hpsearch.integrations.lightning needs Lightning: pip install 'hpsearch[lightning]'"
    ) from None

if TYPE_CHECKING:
    from hpsearch.objectives._context import TrialContext

__all__ = ["Report"]


class Report(pl.Callback):
    """Report every validated epoch's logged metrics through ``ctx`` and prune the trial.

    After each epoch that ran validation, the callback reports epoch
    ``trainer.current_epoch + 1`` with everything the module logged (``trainer.callback_metrics``
    as floats: the validation metrics and the epoch's training metrics, epoch means included)
    through ``ctx.report``, which stores the history and raises ``optuna.TrialPruned`` when the
    study's pruner stops the trial; the exception leaves ``Trainer.fit`` as it is, so let it
    propagate. The sanity-check validation is never reported, epochs that skip validation
    (``check_val_every_n_epoch``) are not reported, and several validations in one epoch
    (``val_check_interval``) report the last one. The report is made when the epoch's numbers
    are final: when the next epoch starts, or when training ends.

    The study's metric (``ctx.metric``) must be logged, e.g. ``self.log("valid_accuracy",
    accuracy)`` in ``validation_step``; otherwise the trial fails with one line naming it and
    what was logged. The same happens when training ends without any validation. One process
    per trial: hpsearch gives each trial one device, so distributed strategies are refused.

    Args:
        ctx: The trial's context, the objective's second argument.
        save_weights: Keep the module's weights (``ctx.save_weights``) at each epoch that is
            the best so far on the study's metric, in the study's direction; the report's
            ``test`` function gets the best epoch's.

    Attributes:
        best: The best reported value of the study's metric, None before a finite one: what
            the objective returns.
        best_epoch: The epoch (from 1) that reported `best`.

    Example:
        >>> from hpsearch.integrations.lightning import Report
        >>> def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float:
        ...     report = Report(ctx)
        ...     trainer = lightning.Trainer(max_epochs=ctx.max_epochs, callbacks=[report])
        ...     trainer.fit(Classifier(params), train_loader, valid_loader)
        ...     return report.best
    """

    def __init__(self, ctx: TrialContext, save_weights: bool = True) -> None:
        super().__init__()
        self.ctx = ctx
        self.save_weights = save_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._validated: int | None = None  # the epoch (from 0) whose validation awaits its report
        self._reported = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Refuse a distributed run: every process would report the same trial."""
        if trainer.world_size > 1:
            raise ReportError(
                f"Report: the Trainer runs {trainer.world_size} processes, which would each "
                "report this trial; hpsearch gives a trial one device: use devices=1"
            )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Note that this epoch validated; the sanity check and `Trainer.validate` do not count."""
        if trainer.sanity_checking or trainer.state.fn != TrainerFn.FITTING:
            return
        self._validated = trainer.current_epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Report the previous epoch, now that its training metrics are final too."""
        self._report(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Report the last epoch; a fit that never validated has reported nothing: say so."""
        self._report(trainer, pl_module)
        if not self._reported:
            raise ReportError(
                f"Report: training ended without a validation epoch, so {self.ctx.metric} was "
                f"never reported; pass a validation DataLoader to Trainer.fit and log it, e.g. "
                f"self.log({self.ctx.metric!r}, ...) in validation_step"
            )

    def _report(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """ctx.report the validated epoch, if any, then keep the weights of a best epoch."""
        if self._validated is None:
            return
        epoch, self._validated = self._validated + 1, None
        metric = self.ctx.metric
        logged = trainer.callback_metrics
        if metric not in logged:
            names = ", ".join(sorted(logged)) or "nothing"
            raise ReportError(
                f"Report: the study's metric {metric} was not logged in epoch {epoch} (logged: "
                f"{names}); log it, e.g. self.log({metric!r}, ...) in validation_step"
            )
        numbers = _scalars(logged)
        self.ctx.report(epoch, **numbers)
        self._reported += 1
        value = numbers[metric]
        if not math.isfinite(value) or (self.best is not None and not self._better(value)):
            return
        self.best, self.best_epoch = value, epoch
        if self.save_weights:
            self.ctx.save_weights(pl_module)

    def _better(self, value: float) -> bool:
        """Strictly better than `best` in the study's direction (the first best epoch stays)."""
        assert self.best is not None
        maximize = self.ctx.spec.direction == "maximize"
        return value > self.best if maximize else value < self.best


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Every logged single number as a float, but `epoch`: ctx.report's own argument."""
    numbers: dict[str, float] = {}
    for name, value in metrics.items():
        if name == "epoch":
            continue
        try:
            numbers[name] = float(value)
        except (TypeError, ValueError, RuntimeError):  # a tensor of several values
            continue
    return numbers
