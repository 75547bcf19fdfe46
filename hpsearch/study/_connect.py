"""Opening a study's storage, and the checks that a stored study matches its study file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpsearch import _keys
from hpsearch.errors import StorageError, arg
from hpsearch.spec import StudySpec, load_spec, read_spec
from hpsearch.storages._rdb import masked, open_storage, stored_direction
from hpsearch.study._options import RunOptions, check_options

if TYPE_CHECKING:
    import optuna

    from hpsearch.storages._tracking import TrackingRDBStorage


def connect(spec: StudySpec, opts: RunOptions, create: bool = True) -> TrackingRDBStorage:
    """Validated options, an open storage with heartbeats, and a direction check."""
    check_options(opts)
    storage = open_storage(opts.storage, opts.heartbeat, opts.grace_period, create)
    check_direction(storage, spec, opts.storage)
    return storage


def close(storage: TrackingRDBStorage) -> None:
    """Close the database connections: SQLite folds its write-ahead log into the file now."""
    storage.engine.dispose()


def check_direction(storage: optuna.storages.RDBStorage, spec: StudySpec, url: str) -> None:
    """A stored study with the same name must optimize in the same direction."""
    stored = stored_direction(storage, spec.name)
    if stored is not None and stored != spec.direction:
        raise StorageError(
            f"study '{spec.name}' in {masked(url)} is set to {stored} but the study file "
            f"{spec.direction}s {spec.metric}; give the study file another name = ... "
            f"or use another {arg('storage')}"
        )


def check_stored_metric(study: optuna.Study, spec: StudySpec, url: str) -> None:
    """A command that reads a study must rank its trials by the metric they were run on."""
    metric = study.user_attrs.get(_keys.METRIC, spec.metric)
    direction = study.direction.name.lower()
    if metric != spec.metric or direction != spec.direction:
        raise StorageError(
            f"study '{spec.name}' in {masked(url)} was run to {direction} {metric} but the "
            f"study file says {spec.metric}; use the study file it was run with"
        )


def load_stored(
    study: str, storage: str, with_code: bool = False
) -> tuple[StudySpec, optuna.Study]:
    """A study file's spec and its stored study, for commands that only read.

    The objective's code is imported (and checked) only `with_code`: `best`, `status` or
    `export` work where the study file is but its code is not (a laptop watching a cluster).
    """
    from hpsearch.storages._rdb import load_study

    spec = load_spec(study) if with_code else read_spec(study)
    loaded = load_study(storage, spec.name, spec.cli_name)
    check_stored_metric(loaded, spec, storage)
    return spec, loaded
