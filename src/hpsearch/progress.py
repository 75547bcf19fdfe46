"""A live progress line: finished/target trials, pruned, best so far, elapsed and remaining."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class TrialProgress:
    """An Optuna callback that advances a tqdm bar as trials finish."""

    def __init__(self, study: optuna.Study, target: int, enabled: bool = True) -> None:
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        self.pruned = sum(t.state == TrialState.PRUNED for t in trials)
        self.bar = tqdm(
            total=target,
            initial=min(done, target),
            unit="trial",
            disable=not enabled,
            dynamic_ncols=True,
            desc=study.study_name,
        )
        self._show(study)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Called by Optuna after each trial."""
        from optuna.trial import TrialState

        if trial.state == TrialState.PRUNED:
            self.pruned += 1
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.bar.update(1)
        self._show(study)

    def _show(self, study: optuna.Study) -> None:
        """Refresh the pruned count and the best value in the bar's postfix."""
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:
            best = "-"
        self.bar.set_postfix_str(f"pruned={self.pruned} best={best}")

    def close(self) -> None:
        """Leave the final line on screen."""
        self.bar.close()
