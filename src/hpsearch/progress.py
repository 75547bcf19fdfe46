"""A live progress line: finished/target trials, pruned, best so far, elapsed and remaining.

The counts come from storage, not from this process, so the line is the same whether one
process runs the study or a launcher watches several workers on one storage.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

from tqdm import tqdm

from hpsearch.ranking import completed_best_first

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
        self.maximize = study.direction.name == "MAXIMIZE"
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
        """Called by Optuna after each trial."""
        self.refresh()

    def refresh(self, prefix: str = "") -> None:
        """Re-read the trials: finished count, pruned count and best value."""
        trials = self.study.get_trials(deepcopy=False)
        finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        pruned = sum(t.state.name == "PRUNED" for t in trials)
        ranked = completed_best_first(trials, self.maximize)
        best = f"{ranked[0].value:.4f}" if ranked else "-"
        self.bar.n = min(finished, self.target)
        self.bar.set_postfix_str(f"{prefix}pruned={pruned} best={best}")

    def close(self) -> None:
        """Leave the final line on screen."""
        self.bar.close()
