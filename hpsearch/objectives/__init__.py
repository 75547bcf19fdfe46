"""Objectives: the function each trial calls, its context, and the one training loop.

A user's function and the built-in models share one contract: ``objective(params, ctx)``
returns the study's metric, reporting each epoch through ``ctx.report``.
"""

from hpsearch.objectives._context import TrialContext
from hpsearch.objectives._fit import fit

__all__ = ["TrialContext", "fit"]
