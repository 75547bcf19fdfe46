"""Objectives: the data, the model and the one training loop every trial runs."""

from hpsearch.objectives._factory import kind_for, make_objective

__all__ = ["kind_for", "make_objective"]
