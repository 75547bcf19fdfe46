"""What an objective function gets besides its parameters: the trial's settings and its hooks."""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import _keys
from hpsearch.errors import HPSearchError, short
from hpsearch.study import _interrupts as interrupts

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore
    from torch import nn

    from hpsearch.spec import StudySpec


class ReportError(HPSearchError):
    """An objective reported without the study's metric, or a value that is not a number."""


@dataclass
class TrialContext:
    """One trial's settings and hooks, passed to the objective function with its parameters.

    hpsearch seeds torch, numpy and random with `seed` before the call, so a trial reruns
    exactly on the CPU.

    Args:
        trial: The Optuna trial, for what the context does not cover.
        spec: The study's spec.
        device: Where to train: `--device`, or the GPU this worker was pinned to.
        seed: This trial's seed, from the study seed and the trial number.
        data_dir: The `--data-dir` folder.
        store: Where `save_weights` puts the weights; None when they are not kept (a rerun).

    From the spec it also gives `max_epochs` (`objective.max_epochs`, or `--max-epochs`),
    `config` (the ``[objective.config]`` table) and `metric` (the name to report and return).

    Example:
        >>> def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float:
        ...     model = Net(params["channels"]).to(ctx.device)
        ...     for epoch in range(1, ctx.max_epochs + 1):
        ...         loss, acc = train_one_epoch(model, params["lr"])
        ...         ctx.report(epoch, valid_accuracy=acc, train_loss=loss)
        ...     ctx.save_weights(model)
        ...     return acc
    """

    trial: optuna.Trial
    spec: StudySpec
    device: torch.device
    seed: int
    data_dir: Path
    store: ArtifactStore | None = None
    history: list[dict[str, float]] = field(default_factory=list, init=False)
    _last: float = field(default_factory=time.perf_counter, init=False, repr=False)

    @property
    def trial_number(self) -> int:
        """The trial's number in the study."""
        return self.trial.number

    @property
    def max_epochs(self) -> int:
        """The most epochs to run: `objective.max_epochs`, or the run's `--max-epochs`."""
        return self.spec.max_epochs

    @property
    def config(self) -> Mapping[str, Any]:
        """The study file's ``[objective.config]`` table ({} for the built-in models)."""
        return self.spec.objective.config if self.spec.objective else {}

    @property
    def metric(self) -> str:
        """The name of the value to report each epoch and to return."""
        return self.spec.metric

    def report(self, epoch: int, **metrics: float) -> None:
        """Record one epoch's metrics, report the study's metric, and prune when told to.

        The metrics are stored as the trial's per-epoch history (with the epoch's seconds when
        not given), which the report draws. Raises `optuna.TrialPruned` when the study's pruner
        stops the trial: let it propagate.

        Args:
            epoch: The epoch just finished, counted from 1, at most `max_epochs`, each once
                and in order (anything else raises `ReportError`, failing the trial).
            **metrics: The epoch's numbers; one must be the study's metric.
        """
        import optuna

        interrupts.raise_if_requested()  # a Ctrl-C Python dropped mid-epoch stops the trial here
        self._check_epoch(epoch)
        if self.metric not in metrics:
            given = ", ".join(metrics) or "nothing"
            raise ReportError(
                f"ctx.report(epoch={epoch}) got {given} but not {self.metric}, the study's "
                f"metric; report it, e.g. ctx.report(epoch, {self.metric}=value)"
            )
        now = time.perf_counter()
        record = {"epoch": int(epoch), **{k: _number(k, v) for k, v in metrics.items()}}
        record.setdefault("seconds", round(now - self._last, 4))
        self._last = now
        self.history.append(record)
        self.trial.set_user_attr(_keys.HISTORY, self.history)
        value = record[self.metric]
        if math.isfinite(value):
            self.trial.report(value, int(epoch))
        if self.trial.should_prune():
            self.trial.set_user_attr(_keys.PRUNED_AT_EPOCH, int(epoch))
            raise optuna.TrialPruned(f"pruned at epoch {epoch}")

    def _check_epoch(self, epoch: Any) -> None:
        """Epochs are what they say: whole numbers from 1 to max_epochs, each reported once.

        A repeat would be stored as a second row for that epoch while Optuna keeps the first
        value (Lightning's sanity check reports an untrained model as epoch 1, then epoch 1).
        """
        where = f"ctx.report(epoch={epoch!r})"
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral):
            raise ReportError(f"{where}: the epoch must be a whole number counted from 1")
        epoch = int(epoch)
        if not 1 <= epoch <= self.max_epochs:
            raise ReportError(
                f"{where}: the epoch must be between 1 and max_epochs = {self.max_epochs}; "
                "count epochs from 1 and stop at ctx.max_epochs"
            )
        last = self.history[-1]["epoch"] if self.history else 0
        if epoch <= last:
            raise ReportError(
                f"{where} after epoch {last:g}: each epoch is reported once, in order; with "
                "Lightning, skip the sanity check (if trainer.sanity_checking: return)"
            )

    def save_weights(self, weights: nn.Module | Mapping[str, torch.Tensor]) -> None:
        """Keep this trial's weights (a model or a state_dict) as an Optuna artifact.

        Only the study's best `keep_weights` trials (and the best per choice) keep theirs;
        `report` and a `test` function get them back. Calling it again replaces the earlier
        weights of the same trial.
        """
        if self.store is None:
            return
        from hpsearch.storages._artifacts import upload_weights

        upload_weights(self.store, self.trial, weights)


def as_number(value: Any) -> float | None:
    """A value user code hands back as a float (tensors and numpy scalars included), or None.

    '0.5' and True are not numbers here, though float() takes them; nor is a numpy or torch bool.
    """
    if isinstance(value, str | bytes | bool) or str(getattr(value, "dtype", "")).endswith("bool"):
        return None
    try:
        return float(value)
    except Exception:  # whatever float() of user data raises (a meta tensor: RuntimeError)
        return None


def _number(name: str, value: Any) -> float:
    """A reported metric as a float, or the trial fails with a line naming it."""
    number = as_number(value)
    if number is None:
        raise ReportError(f"ctx.report: {name} must be a number but got {short(value)}")
    return number
