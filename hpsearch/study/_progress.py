"""A live progress line: finished/target trials, pruned, best so far, elapsed and remaining.

It starts from the counts in storage. A single run then counts its own trials as they finish
(no reread of every trial per trial); the launcher of several workers re-counts from storage
on every poll, so its line covers all of them. When standard error is not a terminal (container
logs, CI, a file), each finished trial prints one plain line instead of a redrawn bar.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

from tqdm import tqdm

from hpsearch import _keys

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
        lines: bool | None = None,
    ) -> None:
        self.study = study
        self.target = target
        self.finished = self.pruned = 0
        self.file = file
        if lines is None:  # a log, not a terminal: one line per trial (a given `file`: the bar)
            lines = file is None and not sys.stderr.isatty()
        self.lines = enabled and lines
        self.shown = {t.number for t in study.get_trials(deepcopy=False)} if self.lines else set()
        self.bar = tqdm(
            total=target,
            unit="trial",
            disable=not enabled or self.lines,
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
        if self.lines:
            self._line(trial)

    def refresh(self, prefix: str = "") -> None:
        """Recount from storage every trial, whichever process ran it."""
        if self.lines:
            self._new_lines()
            return
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
        self.bar.n = min(self.finished, self.target)
        self.bar.set_postfix_str(f"{prefix}pruned={self.pruned} best={self._best()}")

    def _new_lines(self) -> None:
        """A line for each trial that ended since the last poll (several workers' trials)."""
        ended = ("COMPLETE", "PRUNED", "FAIL")
        trials = self.study.get_trials(deepcopy=False)
        self.finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        for trial in trials:
            if trial.state.name in ended and trial.number not in self.shown:
                self._line(trial)

    def _line(self, trial: FrozenTrial) -> None:
        """One plain line for a log: number, state, value, epochs, seconds, best, finished/total."""
        self.shown.add(trial.number)
        attrs = trial.user_attrs
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        seconds = attrs.get(_keys.SECONDS)
        took = "-" if seconds is None else f"{seconds:.1f}"
        print(
            f"trial {trial.number} {trial.state.name.lower()} value={value} "
            f"epochs={attrs.get(_keys.EPOCHS, '-')} seconds={took} best={self._best()} "
            f"finished={min(self.finished, self.target)}/{self.target}",
            file=self.file or sys.stderr,
            flush=True,
        )

    def _best(self) -> str:
        """The best value so far, or '-' before any trial completed."""
        try:
            return f"{self.study.best_value:.4f}"
        except ValueError:
            return "-"

    def close(self) -> None:
        """Leave the final line on screen."""
        self.bar.close()
