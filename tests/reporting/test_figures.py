"""Figure helpers: where the best-so-far plot draws trials that have no value."""

from __future__ import annotations

from hpsearch.reporting._figures import worst_value


def test_pruned_and_failed_trials_sit_at_the_worst_completed_value() -> None:
    losses = [0.39, 0.31, 2.2]
    assert worst_value(losses, maximize=False) == 2.2  # a loss study: the largest is the worst
    assert worst_value([0.91, 0.95], maximize=True) == 0.91
    assert worst_value([], maximize=False) == 0.0
