"""hpsearch: hyperparameter search for PyTorch models, built on Optuna.

The same machinery as the `hpsearch` command, from Python::

    import hpsearch

    spec = hpsearch.load_spec("mnist-narrow")           # a shipped study, or a path to a file
    summary = hpsearch.run(spec, trials=200)            # SQLite in ./hpsearch.db by default
    print(summary.best.params if summary.best else "no trial completed")

Workers on many machines share one database: `create` the study once, then `join` it from
each worker. Every error a user can fix is an `HPSearchError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpsearch.errors import DataError, HPSearchError, SpecError, StorageError, UsageError
from hpsearch.spec import StudySpec, load_spec
from hpsearch.study import RunSummary, create, join, run
from hpsearch.version import __version__

if TYPE_CHECKING:
    from hpsearch.samplers import NarrowingSampler

__all__ = [
    "DataError",
    "HPSearchError",
    "NarrowingSampler",
    "RunSummary",
    "SpecError",
    "StorageError",
    "StudySpec",
    "UsageError",
    "__version__",
    "create",
    "join",
    "load_spec",
    "run",
]


def __getattr__(name: str) -> object:
    """Import the narrowing sampler (and with it Optuna) on first use, not with the package."""
    if name == "NarrowingSampler":
        from hpsearch.samplers import NarrowingSampler

        return NarrowingSampler
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
