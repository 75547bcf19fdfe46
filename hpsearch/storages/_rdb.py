"""Storage URLs to Optuna RDB storages: SQLite by default, any SQLAlchemy URL for many workers."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hpsearch.errors import StorageError, arg
from hpsearch.storages._retry import mentions, retry_race

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage, RDBStorage
    from sqlalchemy.engine import URL

    from hpsearch.storages._tracking import TrackingRDBStorage

DEFAULT_STORAGE = "sqlite:///hpsearch.db"
SQLITE_TIMEOUT_S = 60
SCHEMA_RACE_RETRIES = 5
T = TypeVar("T")
URL_HELP = "use e.g. sqlite:///hpsearch.db or postgresql+psycopg://user:password@host/db"


SECRET_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword"})  # in a URL's query string


def masked(url: str) -> str:
    """The URL with every password hidden (user info and query string), safe for any output.

    SQLAlchemy renders it; a string it cannot parse keeps only the scheme and the host part.
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # e.g. a port that is not a number: hide everything before the last @
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url
    query = {k: "***" if k.lower() in SECRET_KEYS else v for k, v in parsed.query.items()}
    text = parsed.set(query=query).render_as_string(hide_password=True)
    return text.replace("%2A%2A%2A", "***")  # the query string's stars, unescaped


def open_storage(
    url: str,
    heartbeat: int | None = None,
    grace_period: int | None = None,
    create: bool = True,
    writes: bool = True,
) -> TrackingRDBStorage:
    """An Optuna RDB storage for a SQLAlchemy URL, with clear errors for bad or dead databases.

    With `heartbeat`, running trials beat every that many seconds; one silent for
    `grace_period` seconds (its worker died) is marked failed and queued again. Without
    `create`, a SQLite file that does not exist is an error (a mistyped path for a command that
    only reads would otherwise leave an empty database behind). Without `writes`, a SQLite file
    is left in its journal mode: a command that only reads does not change the file.
    """
    import optuna
    import sqlalchemy.exc
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):  # e.g. a port that is not a number
        raise StorageError(f"bad storage URL '{masked(url)}'; {URL_HELP}") from None
    if parsed.get_backend_name() == "sqlite":
        _prepare_sqlite(parsed.database, create, writes)
        engine_kwargs: dict[str, object] = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
    else:
        engine_kwargs = {"pool_pre_ping": True}  # an idle connection may have been dropped
        engine_kwargs |= _utf8_client(parsed)
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.x
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if heartbeat is not None:
                kwargs |= {
                    "heartbeat_interval": heartbeat,
                    "grace_period": grace_period,
                    "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=3),
                }
            return _rdb_storage(url, kwargs)
    except (ImportError, sqlalchemy.exc.NoSuchModuleError):
        raise StorageError(
            f"no database driver for '{parsed.drivername}' in '{masked(url)}'; install it "
            "(for PostgreSQL: pip install 'psycopg[binary]') or " + URL_HELP
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError) as exc:
        raise StorageError(
            f"cannot open the database at {masked(url)}: {_first_line(exc)}; check that the "
            "server is running and the URL is right"
        ) from None


def _utf8_client(parsed: URL) -> dict[str, object]:
    """libpq's client_encoding, UTF-8 unless the URL sets it.

    A database created with SQL_ASCII (an old cluster's default) otherwise hands psycopg bytes,
    and SQLAlchemy's first query on connect fails with a TypeError deep inside the driver.
    """
    libpq = parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in (
        "psycopg",
        "psycopg2",
    )
    if not libpq or "client_encoding" in parsed.query:
        return {}
    return {"connect_args": {"client_encoding": "utf8"}}


def _rdb_storage(url: str, kwargs: dict[str, Any]) -> TrackingRDBStorage:
    """The storage, retried while another process creates the same fresh schema.

    Optuna checks for its tables, then creates them and stamps the schema version; two runs
    started together on a new database both see none, and the slower one fails with "table ...
    already exists" or a duplicate alembic_version row.
    """
    from hpsearch.storages._tracking import TrackingRDBStorage

    racing = mentions("already exists", "alembic_version")
    return retry_race(lambda: TrackingRDBStorage(url, **kwargs), racing, SCHEMA_RACE_RETRIES, 0.2)


def _prepare_sqlite(database: str | None, create: bool = True, writes: bool = True) -> None:
    """Check the SQLite file's folder and switch the file to WAL so workers can share it."""
    if not database or database == ":memory:":
        raise StorageError(
            "in-memory SQLite keeps no trial after the process exits; give a file, e.g. "
            "sqlite:///hpsearch.db"
        )
    path = Path(database)
    if not create and not path.is_file():
        raise StorageError(
            f"no SQLite file {path}; check the {arg('storage')} path (`hpsearch run` creates "
            "the file)"
        )
    if not path.parent.is_dir():
        raise StorageError(
            f"cannot create SQLite file {path}: folder {path.parent} does not exist; create it "
            f"or choose another {arg('storage')} path"
        )
    if not writes:
        return
    try:
        # another process switching it at the same moment
        retry_race(lambda: _switch_to_wal(path), mentions("locked"), SCHEMA_RACE_RETRIES, 0.2)
    except sqlite3.Error as exc:
        raise StorageError(
            f"cannot use {path} as a SQLite database: {exc}; choose another {arg('storage')} path"
        ) from None


def _switch_to_wal(path: Path) -> None:
    """WAL lets readers and one writer share the file; the mode is stored in the file."""
    conn = sqlite3.connect(path, timeout=SQLITE_TIMEOUT_S)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _first_line(exc: BaseException) -> str:
    """The driver's own message, first line only, without SQLAlchemy's boilerplate."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()
    return masked(text[0] if text else type(inner).__name__)[:300]


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail (and, through the storage's callback, queue again) trials whose heartbeat is stale.

    Optuna's own check, without the "experimental" warning it prints on every call.
    """
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDB storage under Optuna's cache (which a loaded study wraps it in), if it is one."""
    from optuna.storages import RDBStorage

    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def heartbeat_ages(storage: BaseStorage, trial_ids: list[int]) -> dict[int, float]:
    """Seconds since each trial's last heartbeat, by the database's clock (absent: never beat)."""
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    backend = rdb_backend(storage)
    if backend is None or not trial_ids:
        return {}
    with _create_scoped_session(backend.scoped_session) as session:
        now = session.execute(sqlalchemy.func.now()).scalar_one().replace(tzinfo=None)
        rows = session.query(models.TrialHeartbeatModel).filter(
            models.TrialHeartbeatModel.trial_id.in_(trial_ids)
        )
        return {row.trial_id: (now - row.heartbeat).total_seconds() for row in rows}


def insert_once(storage: BaseStorage, study_id: int, key: str, value: Any) -> Any:
    """Add a study user attribute unless it exists, and return the stored value.

    Of processes racing to write the same key, exactly one writes (the database's unique key on
    study and attribute decides, on SQLite and PostgreSQL alike); all of them return its value.
    """
    import json

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    backend = rdb_backend(storage)
    if backend is None:  # in memory: one process, nobody to race
        if key not in storage.get_study_user_attrs(study_id):
            storage.set_study_user_attr(study_id, key, value)
        return storage.get_study_user_attrs(study_id)[key]
    row = models.StudyUserAttributeModel(study_id=study_id, key=key, value_json=json.dumps(value))
    with _create_scoped_session(backend.scoped_session, ignore_integrity_error=True) as session:
        session.add(row)  # a second insert of the key fails the unique constraint, ignored
    return backend.get_study_user_attrs(study_id)[key]


def stored_direction(storage: RDBStorage, name: str) -> str | None:
    """'maximize' or 'minimize' for a stored study, or None when it does not exist yet."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    directions = storage.get_study_directions(study_id)
    return "maximize" if directions[0].name == "MAXIMIZE" else "minimize"


def load_study(storage_url: str, name: str, study_arg: str | None = None) -> optuna.Study:
    """An existing study, or a clear error naming the storage that lacks it."""
    import optuna

    storage = open_storage(storage_url, create=False, writes=False)
    if stored_direction(storage, name) is None:
        known = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
        raise StorageError(
            f"no study '{name}' in {masked(storage_url)} (studies there: {known}); run "
            f"`hpsearch run --study {study_arg or name}` first or pass the right {arg('storage')}"
        )
    return optuna.load_study(study_name=name, storage=storage)
