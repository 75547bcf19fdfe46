"""Helpers for tests that start real hpsearch processes on the sleepy objective."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import optuna
import pytest

from hpsearch.storages._rdb import open_storage
from repo import TESTS

SLEEPY = TESTS / "study" / "sleepy.py"  # a user's objective that sleeps per epoch
BEAT = ("--heartbeat", "1", "--grace-period", "3")


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
