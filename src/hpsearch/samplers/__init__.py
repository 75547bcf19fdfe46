"""The study file's [sampler] table to an Optuna sampler."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpsearch.spec import SamplerSpec

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler


def make_sampler(spec: SamplerSpec, seed: int) -> BaseSampler:
    """Random or TPE, seeded from the study seed."""
    from optuna import samplers

    if spec.kind == "random":
        return samplers.RandomSampler(seed=seed)
    return samplers.TPESampler(n_startup_trials=spec.n_startup_trials, seed=seed)
