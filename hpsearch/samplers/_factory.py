"""The study file's [sampler] table to a sampler: Optuna's, or hpsearch's narrowing search."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from hpsearch.spec import StudySpec

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler


def trials_per_round(spec: StudySpec, total_trials: int, stored: int | None) -> int:
    """The study's round length: as first recorded, else from `rounds` or `trials_per_round`."""
    if stored:
        return stored
    if spec.sampler.rounds:
        return max(1, math.ceil(total_trials / spec.sampler.rounds))
    return spec.sampler.trials_per_round


def make_sampler(
    spec: StudySpec,
    seed: int,
    round_length: int | None = None,
    notify: Callable[[str], None] | None = None,
) -> BaseSampler:
    """Random, TPE, or narrowing, seeded from the study seed."""
    from optuna import samplers

    options = spec.sampler
    if options.kind == "random":
        return samplers.RandomSampler(seed=seed)
    if options.kind == "narrowing":
        from hpsearch.samplers._narrowing import NarrowingSampler

        return NarrowingSampler(
            spec.search,
            options,
            round_length or options.trials_per_round,
            maximize=spec.direction == "maximize",
            seed=spec.seed,
            notify=notify,
            can_grow=spec.objective is None,  # a user objective's parameters have no limits
        )
    # constant_liar: a worker sampling while others' trials run counts them as bad, so
    # concurrent workers do not all propose the same promising point (no effect with one).
    return samplers.TPESampler(
        n_startup_trials=options.n_startup_trials, seed=seed, constant_liar=True
    )
