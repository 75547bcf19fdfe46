"""The one ordering of finished trials: completed only, best first, ties to the lower number."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from hpsearch.samplers._ranking import completed_best_first


def _trials() -> list[optuna.trial.FrozenTrial]:
    made = [
        create_trial(value=0.5),
        create_trial(value=0.9),
        create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.99}),
        create_trial(value=0.9),
        create_trial(state=TrialState.FAIL),
        create_trial(value=0.1),
    ]
    for number, trial in enumerate(made):
        trial.number = number
    return made


def test_maximize_puts_the_highest_value_first_and_drops_unfinished_trials() -> None:
    ranked = completed_best_first(_trials(), maximize=True)
    assert [t.number for t in ranked] == [1, 3, 0, 5]


def test_minimize_puts_the_lowest_value_first() -> None:
    ranked = completed_best_first(_trials(), maximize=False)
    assert [t.number for t in ranked] == [5, 0, 1, 3]
