"""Helpers for tests that start real hpsearch processes on the sleepy objective."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest

from hpsearch.storages._rdb import open_storage
from repo import TESTS

SLEEPY = TESTS / "study" / "sleepy.py"  # a user's objective that sleeps per epoch
BEAT = ("--heartbeat", "1", "--grace-period", "3")
SLEEPY_STUDY = """\
seed = 1
[objective]
entry = "sleepy.py:objective"
metric = "score"
direction = "maximize"
max_epochs = {max_epochs}
[objective.config]
epoch = {epoch}
slow_epoch = {slow_epoch}
slow_trials = {slow_trials}
fail_trials = {fail_trials}
jitter = {jitter}
[search]
x = {{ low = 0.0, high = 1.0 }}
[sampler]
kind = "{sampler}"
{sampler_keys}
[pruner]
kind = "{pruner}"
"""


def sleepy_study(
    folder: Path,
    epoch: float = 0.05,
    slow_epoch: float = 0.05,
    slow_trials: tuple[int, ...] = (),
    fail_trials: tuple[int, ...] = (),
    jitter: float = 0.0,
    max_epochs: int = 2,
    sampler: str = "random",
    sampler_keys: str = "",
    pruner: str = "none",
) -> Path:
    """folder/sleepy.toml, a study of the sleepy objective, with the objective's code beside it."""
    shutil.copy(SLEEPY, folder / "sleepy.py")
    path = folder / "sleepy.toml"
    config = {"slow_trials": list(slow_trials), "fail_trials": list(fail_trials)}
    path.write_text(
        SLEEPY_STUDY.format(
            max_epochs=max_epochs,
            epoch=epoch,
            slow_epoch=slow_epoch,
            jitter=jitter,
            sampler=sampler,
            sampler_keys=sampler_keys,
            pruner=pruner,
            **config,
        )
    )
    return path


def postgres_url() -> str | None:
    """The test server's URL, failing where CI requires one and it is missing."""
    url = os.environ.get("HPSEARCH_TEST_POSTGRES")
    if not url and os.environ.get("HPSEARCH_REQUIRE_POSTGRES") == "1":
        pytest.fail("HPSEARCH_REQUIRE_POSTGRES=1 but HPSEARCH_TEST_POSTGRES is not set")
    return url


def hpsearch(*args: str, url: str, separate_stderr: bool = False) -> subprocess.Popen[str]:
    """The real CLI in its own process, with the study's storage in its environment."""
    env = dict(os.environ, HPSEARCH_STORAGE=url, HPSEARCH_OFFLINE="1")
    cmd = [sys.executable, "-m", "hpsearch", *args]
    err = subprocess.PIPE if separate_stderr else subprocess.STDOUT
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err, text=True)


def sleepy_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    """Every stored trial of the sleepy study (none while it is still being created)."""
    try:
        return optuna.load_study(study_name="sleepy", storage=open_storage(url)).trials
    except KeyError:
        return []


def wait_until(check: Callable[[], bool], timeout: float = 90.0) -> None:
    """Poll until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@contextlib.contextmanager
def scratch_database(options: str = "") -> Iterator[str]:
    """A fresh database on the PostgreSQL test server (CREATE DATABASE ... options), dropped after.

    Skips the test when no server is configured.
    """
    url = postgres_url()
    if not url:
        pytest.skip("HPSEARCH_TEST_POSTGRES is not set")
    import sqlalchemy

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name} {options}".rstrip()))
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
        admin.dispose()
