"""hpsearch: hyperparameter search for PyTorch models, built on Optuna.

The same machinery as the `hpsearch` command, from Python::

    import hpsearch

    spec = hpsearch.load_spec("mnist-narrow")           # a shipped study, or a path to a file
    summary = hpsearch.run(spec, trials=200)            # SQLite in ./hpsearch.db by default
    print(summary.best.params if summary.best else "no trial completed")

Your own model: a study file's ``[objective]`` names a function ``objective(params, ctx)``
that trains with the suggested `params` and reports each epoch through `ctx`
(a `TrialContext`); `fit` is hpsearch's own training loop for classifiers on tensors.
Workers on many machines share one database: `create` the study once, then `join` it from
each worker. Every error a user can fix is an `HPSearchError`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from hpsearch.errors import DataError, HPSearchError, SpecError, StorageError, UsageError
from hpsearch.spec import StudySpec, load_spec
from hpsearch.study import RunSummary, create, join, run
from hpsearch.version import __version__

# A stepped range whose step does not divide it ends at the last step below `high`, as the
# study files documentation says; Optuna warns about it each time it rebuilds the distribution
# (every trial it loads), which would bury a command's output (`export` prints CSV).
warnings.filterwarnings(
    "ignore", message=r"The distribution is specified by .* the range is not divisible by `step`"
)

if TYPE_CHECKING:
    from hpsearch.objectives import TrialContext, fit
    from hpsearch.samplers import NarrowingSampler

__all__ = [
    "DataError",
    "HPSearchError",
    "NarrowingSampler",
    "RunSummary",
    "SpecError",
    "StorageError",
    "StudySpec",
    "TrialContext",
    "UsageError",
    "__version__",
    "create",
    "fit",
    "join",
    "load_spec",
    "run",
]


def __getattr__(name: str) -> object:
    """Import what needs Optuna or torch on first use, not with the package (a fast CLI start)."""
    if name == "NarrowingSampler":
        from hpsearch.samplers import NarrowingSampler

        return NarrowingSampler
    if name in ("TrialContext", "fit"):
        from hpsearch import objectives

        return getattr(objectives, name)
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
