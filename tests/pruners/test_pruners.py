"""The study file's pruner: n_warmup_steps counts epochs, which hpsearch numbers from 1."""

from __future__ import annotations

import optuna
import pytest

from hpsearch.pruners._factory import make_pruner
from hpsearch.spec import PrunerSpec


@pytest.mark.parametrize("kind", ["threshold", "median"])
@pytest.mark.parametrize("warmup", [0, 1, 3])
def test_n_warmup_steps_protects_that_many_epochs(kind: str, warmup: int) -> None:
    extra = {"lower": 0.9} if kind == "threshold" else {"n_startup_trials": 1}
    spec = PrunerSpec(kind=kind, n_warmup_steps=warmup, **extra)  # type: ignore[arg-type]
    study = optuna.create_study(direction="maximize", pruner=make_pruner(spec, max_epochs=10))
    if kind == "median":  # one good trial to compare against
        good = study.ask()
        for epoch in range(1, 11):
            good.report(0.95, epoch)
        study.tell(good, 0.95)
    trial = study.ask()
    first_pruned = None
    for epoch in range(1, 11):  # as hpsearch reports: epochs 1, 2, ...
        trial.report(0.5, epoch)
        if trial.should_prune():
            first_pruned = epoch
            break
    assert first_pruned == warmup + 1
