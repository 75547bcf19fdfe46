"""Pruners: the study file's [pruner] table to one of Optuna's pruners."""

from hpsearch.pruners._factory import make_pruner

__all__ = ["make_pruner"]
