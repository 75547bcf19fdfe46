"""Where a study stands: its trials counted by state, and the best completed one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, TrialState


@dataclass(frozen=True)
class RunSummary:
    """Where the study stands after a run.

    Attributes:
        name: The study's name.
        target: The study's total of finished (complete or pruned) trials.
        complete: Completed trials in storage, from every run and worker.
        pruned: Pruned trials in storage.
        failed: Failed trials in storage (each failure is retried and does not count).
        best: The best completed trial, or None when none has completed.
        seconds: How long this run took.

    Example:
        >>> summary = hpsearch.run("mnist-reg", trials=20)
        >>> print(f"{summary.finished}/{summary.target} finished, {summary.pruned} pruned")
    """

    name: str
    target: int
    complete: int
    pruned: int
    failed: int
    best: FrozenTrial | None
    seconds: float

    @property
    def finished(self) -> int:
        """Trials that count toward the total: completed and pruned."""
        return self.complete + self.pruned


def summarize(study: optuna.Study, target: int, seconds: float) -> RunSummary:
    """Count trial states and pick the best completed trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return RunSummary(
        name=study.study_name,
        target=target,
        complete=len(complete),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        best=study.best_trial if complete else None,
        seconds=seconds,
    )


def stored_summary(
    storage: optuna.storages.BaseStorage, name: str, target: int, seconds: float
) -> RunSummary:
    """Summarize the stored study."""
    import optuna

    return summarize(optuna.load_study(study_name=name, storage=storage), target, seconds)


def finished_states() -> tuple[TrialState, ...]:
    """Completed and pruned trials count toward the total; failed ones are redone."""
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def finished_count(storage: optuna.storages.BaseStorage, name: str) -> int:
    """Trials that count toward the study's total (0 when there is no such study)."""
    return count_trials(storage, name, finished_states())


def done(storage: optuna.storages.BaseStorage, name: str, target: int) -> bool:
    """The study holds its total and no queued retry of a failed trial waits to run."""
    from optuna.trial import TrialState

    queued = count_trials(storage, name, (TrialState.WAITING,))
    return not queued and finished_count(storage, name) >= target


def count_trials(
    storage: optuna.storages.BaseStorage, name: str, states: tuple[TrialState, ...] | None
) -> int:
    """How many trials of a study (possibly absent) are in the given states."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False, states=states))


def study_attrs(storage: optuna.storages.BaseStorage, name: str) -> dict[str, Any]:
    """A stored study's user attributes, or {} when it does not exist yet."""
    try:
        return storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    except KeyError:
        return {}
