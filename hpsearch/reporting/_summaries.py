"""Results a person can read: text summaries of a study and its best trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpsearch import _keys

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpsearch.study._summary import RunSummary


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
    epochs = attrs.get(_keys.EPOCHS, "?")
    seconds = attrs.get(_keys.SECONDS)
    took = format_duration(seconds) if seconds is not None else "?"
    if _keys.BEST_EPOCH in attrs:
        ran = f"best epoch {attrs[_keys.BEST_EPOCH]} of {epochs} run"
    else:  # a user's own loop: hpsearch knows how many epochs it reported
        ran = f"{epochs} epoch{'' if epochs == 1 else 's'} run"
    lines = [f"best trial #{trial.number}: {metric} = {trial.value:.4f} ({ran}, {took})"]
    width = max((len(k) for k in trial.params), default=0)
    lines += [f"  {k.ljust(width)} = {format_value(v)}" for k, v in sorted(trial.params.items())]
    return lines


NO_ERROR = "no error recorded (its worker stopped, or an older hpsearch ran it)"


def describe_failures(trials: list[FrozenTrial], last: int = 3) -> list[str]:
    """How many trials failed, and the errors of the last few."""
    failed = [t for t in trials if t.state.name == "FAIL"]
    if not failed:
        return []
    lines = [f"{len(failed)} failed trial{'s' if len(failed) > 1 else ''}; the last:"]
    for trial in failed[-last:]:
        error = trial.user_attrs.get(_keys.ERROR, NO_ERROR)
        lines.append(f"  #{trial.number}: {error}")
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


def format_range(record: dict[str, Any]) -> str:
    """A range record as '0.0001..0.1' or 'a|b|c'."""
    if "choices" in record:
        return "|".join(
            str(c).lower() if isinstance(c, bool) else str(c) for c in record["choices"]
        )
    return f"{format_value(record['low'])}..{format_value(record['high'])}"


def ranges_table(trials: list[FrozenTrial], maximize: bool) -> list[str]:
    """One row per narrowing round: ranges, trials, how many completed, their best; then notes.

    The completed count says what "best" stands on: a round whose trials were mostly pruned can
    show a poor best from its one completed (perhaps diverged) trial.
    """
    rounds: dict[int, list[FrozenTrial]] = {}
    for trial in trials:
        if _keys.NARROWING_ROUND in trial.user_attrs:
            rounds.setdefault(trial.user_attrs[_keys.NARROWING_ROUND], []).append(trial)
    if not rounds:
        return []
    names = list(rounds[min(rounds)][0].user_attrs[_keys.NARROWING_RANGES])
    header = ["round", "trials", "completed", "best", *names]
    rows = [header]
    notes: list[str] = []
    for number in sorted(rounds):
        members = rounds[number]
        values = [t.value for t in members if t.value is not None and t.state.name == "COMPLETE"]
        best = (max if maximize else min)(values) if values else None
        ranges = members[0].user_attrs[_keys.NARROWING_RANGES]
        rows.append(
            [
                str(number),
                str(len(members)),
                str(len(values)),
                "-" if best is None else f"{best:.4f}",
                *(format_range(ranges[n]) if n in ranges else "-" for n in names),
            ]
        )
        for trial in members:
            notes += [n for n in trial.user_attrs.get(_keys.NARROWING_NOTES, []) if n not in notes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return lines + [f"note: {n}" for n in notes]
