"""Results a person can read: text summaries of a study and its best trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpsearch.search import RunSummary


def format_duration(seconds: float) -> str:
    """Seconds as '1h02m', '3m05s' or '4.2s'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_value(value: Any) -> str:
    """Compact numbers: 4 significant digits for floats, plain for the rest."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def describe_trial(trial: FrozenTrial, metric: str) -> list[str]:
    """The best-trial block: value, epochs, time, then one line per parameter."""
    attrs = trial.user_attrs
    epochs = attrs.get("epochs", "?")
    best_epoch = attrs.get("best_epoch", "?")
    seconds = attrs.get("seconds")
    took = format_duration(seconds) if seconds is not None else "?"
    lines = [
        f"best trial #{trial.number}: {metric} = {trial.value:.4f} "
        f"(best epoch {best_epoch} of {epochs} run, {took})"
    ]
    width = max((len(k) for k in trial.params), default=0)
    lines += [f"  {k.ljust(width)} = {format_value(v)}" for k, v in sorted(trial.params.items())]
    return lines


def describe_run(summary: RunSummary, metric: str) -> list[str]:
    """The end-of-run summary: totals, then the best trial."""
    lines = [
        f"study {summary.name}: {summary.finished}/{summary.target} trials finished "
        f"({summary.complete} complete, {summary.pruned} pruned, {summary.failed} failed) "
        f"in {format_duration(summary.seconds)} this run"
    ]
    if summary.best is None:
        lines.append("no trial has completed yet")
    else:
        lines += describe_trial(summary.best, metric)
    return lines
