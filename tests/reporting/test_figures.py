"""Figure helpers: where the best-so-far plot draws trials that have no value; the anytime curve;
values near the largest float."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial
from PIL import Image

from hpsearch import _keys
from hpsearch.reporting._figures import (
    _axis,
    _labels,
    best_over_time,
    best_so_far,
    loss_curves,
    metric_vs_params,
    narrowing_ranges,
    worst_value,
)
from hpsearch.reporting._summaries import anytime

START = datetime(2026, 1, 1, 9, 0)
UNIT = FloatDistribution(0.0, 1.0)


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


def test_values_too_large_for_matplotlibs_arithmetic_are_rescaled() -> None:
    """Near 1e308 a linear axis counts in powers of ten, a log axis in log10; others as they are."""
    values, label, log = _axis("b", [7.9e307, -7e307, 1], log=False)
    assert (label, log) == ("b / 1e307", False)
    assert values == pytest.approx([7.9, -7.0, 1e-307])
    values, label, log = _axis("c", [1.7e308, 1e-300], log=True)
    assert (values, label, log) == (pytest.approx([308.2304, -300.0]), "log10(c)", False)
    assert _axis("lr", [1e-3, 0.1], log=True) == ([1e-3, 0.1], "lr", True)
    assert _axis("n", [2**62, -(2**62)], log=False)[0] == [2.0**62, -(2.0**62)]  # floats


def test_choices_are_labelled_short_unless_two_labels_would_match() -> None:
    assert list(_labels([5.06e16, 1.9, 1.7976931348623157e308]).values()) == [
        "5.06e+16",
        "1.9",
        "1.79769e+308",
    ]
    assert list(_labels([0.1234567, 0.1234568]).values()) == ["0.1234567", "0.1234568"]
    assert list(_labels([True, False]).values()) == ["True", "False"]


def narrowed(
    number: int,
    params: dict[str, float],
    spaces: dict[str, BaseDistribution],
    ranges: dict[str, dict[str, float]],
) -> FrozenTrial:
    """A completed trial of narrowing round `number`, with that round's ranges."""
    return optuna.trial.create_trial(
        params=params,
        distributions=spaces,
        value=0.5 + number / 10,
        user_attrs={_keys.NARROWING_ROUND: number, _keys.NARROWING_RANGES: ranges},
    )


def assert_params_and_rounds_draw(trials: list[FrozenTrial], folder: Path) -> None:
    """metric_vs_params and narrowing_ranges write PNGs, and nothing warns while they draw."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = [
            metric_vs_params(trials, folder / "m.png"),
            narrowing_ranges(trials, folder / "n.png"),
        ]
    assert all(path is not None and Image.open(path).format == "PNG" for path in drawn)


@pytest.mark.slow  # matplotlib's font cache
def test_huge_values_draw_both_figures_without_a_warning(tmp_path: Path) -> None:
    """Choices and ranges out to the largest float: PNGs, and no RuntimeWarning from numpy."""
    spaces = {
        "a": CategoricalDistribution([1.9, 1.7976931348623157e308]),
        "b": FloatDistribution(-8e307, 8e307),
        "c": FloatDistribution(1e-300, 1.7e308, log=True),
    }
    ranges = {"b": {"low": -8e307, "high": 8e307}, "c": {"low": 1e-300, "high": 1.7e308}}
    trials = [
        narrowed(number, {"a": a, "b": b, "c": c}, spaces, ranges)
        for number, (a, b, c) in enumerate(
            [(1.9, 7.9e307, 1e-300), (1.7976931348623157e308, 0, 1.6e308)]
        )
    ]
    assert_params_and_rounds_draw(trials, tmp_path)


@pytest.mark.slow  # matplotlib's font cache
def test_a_metric_near_the_largest_float_draws_every_figure_without_a_warning(
    tmp_path: Path,
) -> None:
    """A finite metric is valid however large: each figure of it draws in units of 1e308."""
    huge = [1.7e308, 0.5, None, 1e308, None, 2.0]
    trials = loss_study()
    for trial, value in zip(trials, huge, strict=True):
        trial.value, trial.params, trial.distributions = value, {"x": 0.5}, {"x": UNIT}
        trial.user_attrs[_keys.HISTORY] = [{"epoch": 1, "valid_loss": value or 1.0}]
    curve = anytime(trials, maximize=False)
    assert curve is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = [
            loss_curves([t for t in trials if t.value], tmp_path / "loss.png"),
            best_so_far(trials, False, tmp_path / "so_far.png"),
            best_over_time(trials, curve, False, tmp_path / "over_time.png"),
            metric_vs_params(trials, tmp_path / "params.png"),
        ]
    assert all(Image.open(path).format == "PNG" for path in drawn)


@pytest.mark.slow  # matplotlib's font cache
def test_log_values_a_rounding_apart_draw_without_a_warning(tmp_path: Path) -> None:
    """1e-06 and 1.0000000000000004e-06 on a log axis: matplotlib collapsed both limits to one."""
    close = [1e-06, 1.0000000000000004e-06]
    spaces = {"x": FloatDistribution(1e-6, 2e-6, log=True)}
    trials = [
        narrowed(number, {"x": x}, spaces, {"x": {"low": x, "high": x}})
        for number, x in enumerate(close)
    ]
    assert_params_and_rounds_draw(trials, tmp_path)
