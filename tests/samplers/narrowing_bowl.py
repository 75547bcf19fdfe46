"""A cheap synthetic objective with a known optimum, for testing the narrowing sampler.

Run as a script it is one worker process: `python narrowing_bowl.py STUDY_FILE STORAGE TRIALS`.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import optuna

from hpsearch.objectives._builtin import hyperparameters
from hpsearch.objectives._runner import suggest_params
from hpsearch.samplers._factory import make_sampler
from hpsearch.spec import StudySpec, load_spec

OPT_LR, OPT_DROPOUT = 1e-3, 0.3
FINISHED = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.FAIL,
)


def bowl(spec: StudySpec, fail_every: int = 0, prune_every: int = 0, sleep: float = 0.0):  # type: ignore[no-untyped-def]
    """Maximized at lr = 1e-3 and dropout = 0.3; BatchNorm off is worth a bit more."""

    def objective(trial: optuna.Trial) -> float:
        hp = hyperparameters(spec, suggest_params(trial, spec))
        if sleep:
            time.sleep(sleep)
        if fail_every and trial.number % fail_every == fail_every - 1:
            raise RuntimeError("a deliberately failed trial")
        value = -((math.log10(hp.lr) - math.log10(OPT_LR)) ** 2)
        value -= 0.0 if hp.batch_norm else 0.2
        if not hp.batch_norm:
            value -= 40 * (hp.dropout - OPT_DROPOUT) ** 2
        value -= 0.05 * math.log2(hp.batch_size / 128) ** 2
        trial.report(value, 1)
        if prune_every and trial.number % prune_every == prune_every - 1:
            raise optuna.TrialPruned()
        return value

    return objective


def run(
    spec: StudySpec, storage: str | None, trials: int, notes: list[str], **kw: float
) -> optuna.Study:
    """Run the bowl with hpsearch's narrowing sampler."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = make_sampler(spec, spec.seed, spec.sampler.trials_per_round, notes.append)
    study = optuna.create_study(
        storage=storage,
        study_name=spec.name,
        direction="maximize",
        sampler=sampler,
        load_if_exists=True,
    )
    study.optimize(
        bowl(spec, **kw),
        callbacks=[optuna.study.MaxTrialsCallback(trials, states=FINISHED)],
        catch=(RuntimeError,),
    )
    return study


if __name__ == "__main__":
    run(load_spec(sys.argv[1]), sys.argv[2], int(sys.argv[3]), [], sleep=float(sys.argv[4]))
    print(Path(sys.argv[1]).stem, "done")
