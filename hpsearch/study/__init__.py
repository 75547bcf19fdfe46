"""Running, creating and joining a study: options, the optimize loop, workers, the manifest."""

from hpsearch.study._run import create, join, run
from hpsearch.study._summary import RunSummary

__all__ = ["RunSummary", "create", "join", "run"]
