"""A live progress line: finished/target trials, pruned, best so far, elapsed and remaining.

It starts from the counts in storage. A single run then counts its own trials as they finish
(no reread of every trial per trial); the launcher of several workers re-counts from storage
on every poll, so its line covers all of them.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


class TrialProgress:
    """A tqdm bar over the study's finished trials; also usable as an Optuna callback."""

    def __init__(
        self,
        study: optuna.Study,
        target: int,
        enabled: bool = True,
        file: IO[str] | None = None,
    ) -> None:
        self.study = study
        self.target = target
        self.finished = self.pruned = 0
        self.bar = tqdm(
            total=target,
            unit="trial",
            disable=not enabled,
            dynamic_ncols=True,
            desc=study.study_name,
            file=file,
        )
        self.refresh()

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Called by Optuna after each trial of this process: count it, without a full reread."""
        self.finished += trial.state.name in ("COMPLETE", "PRUNED")
        self.pruned += trial.state.name == "PRUNED"
        self._show()

    def refresh(self, prefix: str = "") -> None:
        """Recount from storage every trial, whichever process ran it."""
        if self.bar.disable:
            return
        trials = self.study.get_trials(deepcopy=False)
        self.finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        self.pruned = sum(t.state.name == "PRUNED" for t in trials)
        self._show(prefix)

    def _show(self, prefix: str = "") -> None:
        """Move the bar and rewrite its postfix; the best value is one indexed query."""
        if self.bar.disable:
            return
        try:
            best = f"{self.study.best_value:.4f}"
        except ValueError:  # no completed trial yet
            best = "-"
        self.bar.n = min(self.finished, self.target)
        self.bar.set_postfix_str(f"{prefix}pruned={self.pruned} best={best}")

    def close(self) -> None:
        """Leave the final line on screen."""
        self.bar.close()
