"""One ordering of finished trials, shared by narrowing, weight pruning and the report."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


def completed_best_first(trials: Iterable[FrozenTrial], maximize: bool) -> list[FrozenTrial]:
    """Completed trials with a value, best first; ties go to the lower trial number."""
    sign = -1.0 if maximize else 1.0
    return sorted(
        (t for t in trials if t.state.name == "COMPLETE" and t.value is not None),
        key=lambda t: (sign * float(t.value or 0.0), t.number),
    )
