"""The study file's [pruner] table to an Optuna pruner."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpsearch.spec import PrunerSpec

if TYPE_CHECKING:
    from optuna.pruners import BasePruner


def make_pruner(spec: PrunerSpec, max_epochs: int) -> BasePruner:
    """Median, successive halving, hyperband, threshold, or none.

    `n_warmup_steps = k` keeps the first k epochs from pruning. Optuna counts steps from 0 and
    prunes from step k; hpsearch reports epochs from 1, so it passes k + 1.
    """
    from optuna import pruners

    warmup = spec.n_warmup_steps + 1
    if spec.kind == "median":
        return pruners.MedianPruner(n_startup_trials=spec.n_startup_trials, n_warmup_steps=warmup)
    if spec.kind == "successive_halving":
        return pruners.SuccessiveHalvingPruner(
            min_resource=spec.min_resource, reduction_factor=spec.reduction_factor
        )
    if spec.kind == "hyperband":
        return pruners.HyperbandPruner(
            min_resource=spec.min_resource,
            max_resource=max_epochs,
            reduction_factor=spec.reduction_factor,
        )
    if spec.kind == "threshold":
        return pruners.ThresholdPruner(lower=spec.lower, upper=spec.upper, n_warmup_steps=warmup)
    return pruners.NopPruner()
