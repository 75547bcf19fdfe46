"""Figure helpers: where the best-so-far plot draws trials that have no value; the anytime curve."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from PIL import Image

from hpsearch import _keys
from hpsearch.reporting._figures import best_over_time, worst_value
from hpsearch.reporting._summaries import anytime

START = datetime(2026, 1, 1, 9, 0)


def test_pruned_and_failed_trials_sit_at_the_worst_completed_value() -> None:
    losses = [0.39, 0.31, 2.2]
    assert worst_value(losses, maximize=False) == 2.2  # a loss study: the largest is the worst
    assert worst_value([0.91, 0.95], maximize=True) == 0.91
    assert worst_value([], maximize=False) == 0.0


def finished(
    number: int, state: str, value: float | None, start_s: float, end_s: float
) -> optuna.trial.FrozenTrial:
    """A finished trial from start_s to end_s seconds after START, with a one-epoch history."""
    return optuna.trial.FrozenTrial(
        number=number,
        state=optuna.trial.TrialState[state],
        value=value,
        datetime_start=START + timedelta(seconds=start_s),
        datetime_complete=START + timedelta(seconds=end_s),
        params={},
        distributions={},
        user_attrs={_keys.HISTORY: [{"epoch": 1, "valid_loss": 1.0}]},
        system_attrs={},
        intermediate_values={},
        trial_id=number,
    )


def loss_study() -> list[optuna.trial.FrozenTrial]:
    """A loss study: #1 finishes before #0 (two workers); pruned and failed trials between."""
    return [
        finished(0, "COMPLETE", 0.40, 0, 120),
        finished(1, "COMPLETE", 0.50, 10, 60),
        finished(2, "PRUNED", None, 60, 90),
        finished(3, "COMPLETE", 0.30, 120, 240),
        finished(4, "FAIL", None, 240, 250),
        finished(5, "COMPLETE", 0.35, 250, 600),
    ]


def test_the_anytime_curve_follows_completion_time_and_completed_trials_only() -> None:
    """Improvements in the order trials finished; a pruned trial never sets the best."""
    trials = loss_study()
    curve = anytime(trials, maximize=False)
    assert curve is not None
    assert curve.points == [(60.0, 0.5, 1), (120.0, 0.4, 0), (240.0, 0.3, 3)]
    assert (curve.best_trial, curve.found_at, curve.since, curve.trials_since) == (3, 240, 360, 1)
    assert anytime(trials[2:3], maximize=False) is None  # nothing completed yet


@pytest.mark.slow  # matplotlib's first use starts fc-list to build its font cache
def test_the_best_over_time_figure_is_a_png(tmp_path: Path) -> None:
    """The anytime curve drawn against minutes, pruned and failed trials included."""
    trials = loss_study()
    curve = anytime(trials, maximize=False)
    assert curve is not None
    png = best_over_time(trials, curve, maximize=False, path=tmp_path / "best_over_time.png")
    with Image.open(png) as image:
        image.verify()
        assert image.format == "PNG"
        assert image.size == (640, 400)
