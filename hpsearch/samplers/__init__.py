"""Samplers: Optuna's random and TPE, and hpsearch's narrow-the-range random search."""

from hpsearch.samplers._factory import make_sampler
from hpsearch.samplers._narrowing import NarrowingSampler

__all__ = ["NarrowingSampler", "make_sampler"]
