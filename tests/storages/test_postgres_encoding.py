"""A PostgreSQL database in SQL_ASCII (an old cluster's default encoding) works like a UTF-8 one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from click.testing import Result

from hpsearch.storages import open_storage
from processes import scratch_database


@pytest.fixture
def sql_ascii() -> Iterator[str]:
    """A fresh database created with ENCODING 'SQL_ASCII' on the PostgreSQL test server."""
    options = "ENCODING 'SQL_ASCII' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
    with scratch_database(options) as url:
        yield url


@pytest.mark.slow
def test_a_sql_ascii_database_runs_a_study(
    cli: Callable[..., Result], make_study: Callable[..., Path], sql_ascii: str
) -> None:
    """It used to fail on connect with a TypeError traceback from inside SQLAlchemy."""
    path = make_study(max_epochs=1)
    done = cli("run", "--study", str(path), "--trials", "2", "--storage", sql_ascii)
    assert done.exit_code == 0, done.output
    status = cli("status", "--study", str(path), "--storage", sql_ascii)
    assert status.exit_code == 0 and "2 finished" in status.output, status.output
    storage = open_storage(sql_ascii, create=False)
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
