"""Results a person can read: text summaries of a study and its best trial."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


def trial_epochs(trial: FrozenTrial) -> int:
    """Epochs a trial ran: its history, or its reported steps where it stored no history."""
    history = trial.user_attrs.get(_keys.HISTORY)
    return len(history) if history is not None else len(trial.intermediate_values)


def epochs_run(trials: list[FrozenTrial]) -> int:
    """Epochs the whole study ran, failed and running trials' included: what it really cost."""
    return sum(trial_epochs(t) for t in trials)


def recorded_max_epochs(attrs: dict[str, Any]) -> int | None:
    """A full trial's epochs as the study recorded them (the latest allowed change wins), or None.

    Read from storage alone, so `status` needs no study code; a study made before the manifest
    recorded it gives None rather than a guess.
    """
    changes = attrs.get(_keys.SPEC_CHANGES) or []
    record = changes[-1] if changes else attrs.get(_keys.MANIFEST) or {}
    value = record.get("max_epochs")
    return int(value) if value else None


def epochs_text(run: int, target: int, max_epochs: int | None) -> str:
    """Epochs spent against the study's total of full trials: what pruning and stopping saved."""
    if not target or not max_epochs:
        return f"epochs: {run:,} run"
    full = target * max_epochs
    trials = f"{target:,} full trial{'' if target == 1 else 's'}"
    share = 100 * run / full
    return f"epochs: {run:,} run of the {full:,} that {trials} would cost ({share:.0f} %)"


@dataclass(frozen=True)
class Anytime:
    """The best completed value over study time, so a user can judge when to stop."""

    start: datetime  # when the study's first trial started
    points: list[tuple[float, float, int]]  # each improvement: (seconds in, best value, trial)
    span: float  # seconds to the latest finished trial, or to now while trials run
    trials_since: int  # trials finished (complete or pruned) after the best one

    @property
    def found_at(self) -> float:
        """Seconds into the study when the current best trial finished."""
        return self.points[-1][0]

    @property
    def best_trial(self) -> int:
        """The current best trial's number."""
        return self.points[-1][2]

    @property
    def since(self) -> float:
        """Seconds without an improvement."""
        return round(max(0.0, self.span - self.found_at), 1)


def anytime(trials: list[FrozenTrial], maximize: bool) -> Anytime | None:
    """Best value so far by completion time; None before a trial completes.

    Only completed trials set the best, as in the study's best trial and the best-so-far figure.
    """
    starts = [t.datetime_start for t in trials if t.datetime_start]
    done = sorted(
        (t for t in trials if t.state.name == "COMPLETE" and t.datetime_complete),
        key=lambda t: t.datetime_complete or datetime.max,
    )
    if not starts or not done:
        return None
    start = min(starts)
    best = done[0]
    points = [(_seconds(start, best.datetime_complete), float(best.value or 0.0), best.number)]
    for trial in done[1:]:
        value = float(trial.value or 0.0)
        if value > points[-1][1] if maximize else value < points[-1][1]:
            best = trial
            points.append((_seconds(start, trial.datetime_complete), value, trial.number))
    return Anytime(start, points, _span(trials, start), _finished_after(trials, best))


def _seconds(start: datetime, when: datetime | None) -> float:
    """Seconds from the study's start to `when` (Optuna stores naive local times)."""
    return round(((when or start) - start).total_seconds(), 1)


def _span(trials: list[FrozenTrial], start: datetime) -> float:
    """Study time so far: to now while a trial runs, else to the latest finished trial."""
    if any(t.state.name == "RUNNING" for t in trials):
        return _seconds(start, datetime.now())
    return max(_seconds(start, t.datetime_complete) for t in trials)


def _finished_after(trials: list[FrozenTrial], best: FrozenTrial) -> int:
    """Trials that finished after the best one: how much search has not improved on it."""
    found = best.datetime_complete or datetime.max
    return sum(
        t.state.name in ("COMPLETE", "PRUNED") and (t.datetime_complete or found) > found
        for t in trials
    )


def anytime_text(value: float, found_at: float, trial: int, since: float, trials_since: int) -> str:
    """When the current best came and how long the search has gone on without improving it."""
    found = f"best {value:.4f} found at {format_duration(found_at)} of study time (trial #{trial})"
    if not trials_since:
        return f"{found}; no trial has finished since"
    trials = f"{trials_since:,} trial{'' if trials_since == 1 else 's'}"
    return f"{found}; no improvement for the last {format_duration(since)} / {trials}"
