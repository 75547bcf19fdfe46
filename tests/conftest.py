"""Shared fixtures: the committed MNIST subset, tiny study files, and temporary SQLite storage."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from click.testing import CliRunner, Result

from hpsearch.cli import main
from hpsearch.objectives import _train

# Tests never download anything: data comes from tests/data or HPSEARCH_DATA_DIR.
os.environ["HPSEARCH_OFFLINE"] = "1"
os.environ.pop("HPSEARCH_STORAGE", None)
# Decoded-data caches go to a throwaway folder, never the user's ~/.cache, removed at the end.
os.environ["HPSEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="hpsearch-test-cache-")

from processes import scratch_database
from repo import TEST_DATA

atexit.register(shutil.rmtree, os.environ["HPSEARCH_CACHE_DIR"], ignore_errors=True)

TINY_STUDY = """\
description = "tiny test study"
seed = 3
[data]
train_size = 2400
valid_size = 600
[training]
max_epochs = {max_epochs}
patience = 2
[search]
lr = {{ low = 3e-4, high = 3e-3, log = true }}
weight_decay = {{ low = 1e-6, high = 1e-3, log = true }}
batch_size = {{ choices = [128, 256] }}
batch_norm = {{ choices = [true, false] }}
dropout = {{ low = 0.1, high = 0.5, step = 0.1, when = {{ batch_norm = false }} }}
[sampler]
kind = "random"
[pruner]
{pruner}
"""


@pytest.fixture
def mnist_dir() -> Path:
    """The committed real MNIST subset (3,000 train, 1,000 test images)."""
    return TEST_DATA


@pytest.fixture
def full_data_dir() -> Path:
    """The full data named by HPSEARCH_DATA_DIR: skipped when unset, a failure when missing."""
    value = os.environ.get("HPSEARCH_DATA_DIR")
    if not value:
        pytest.skip("HPSEARCH_DATA_DIR is not set")
    path = Path(value)
    assert (path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file(), (
        f"HPSEARCH_DATA_DIR={value} lacks MNIST/raw"
    )
    return path


@pytest.fixture
def make_study(tmp_path: Path) -> Callable[..., Path]:
    """Write a tiny study file; pruner and epochs can be changed per test."""

    def write(
        name: str = "tiny",
        max_epochs: int = 2,
        pruner: str = 'kind = "none"',
        text: str | None = None,
    ) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text or TINY_STUDY.format(max_epochs=max_epochs, pruner=pruner))
        return path

    return write


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    """A fresh SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'trials.db'}"


@pytest.fixture
def cli(mnist_dir: Path) -> Callable[..., Result]:
    """Invoke the real CLI in-process; `run` gets the MNIST subset and no progress bar.

    `run` also gets `--workers 1` unless the test chooses: in-process tests of what a run
    stores need no worker processes (tests/study/test_workers.py covers the default).
    """

    def invoke(*args: str) -> Result:
        extra: list[str] = []
        if args and args[0] == "run":
            extra = ["--data-dir", str(mnist_dir), "--device", "cpu", "--no-progress"]
            chosen = {"--workers", "--gpus", "--workers-per-gpu"} & set(args)
            extra += [] if chosen else ["--workers", "1"]
        return CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)

    return invoke


SLOW_HINT = "this test trains a model (or starts a process): mark it @pytest.mark.slow"


@contextlib.contextmanager
def refuse_slow_work(item: pytest.Item) -> Iterator[None]:
    """Make an unmarked test fail the moment it trains or starts a process.

    `pytest -m "not slow"` stays a quick check only while every such test is marked; without
    this, a new unmarked one would slow it down silently. Every way to train (fit, run_trial,
    make_objective, `hpsearch run`, rerun) runs its epochs through _train.train_epoch, which fit
    looks up in its module at call time: patched there, it is caught however `fit` was imported.
    subprocess.run and check_output go through Popen.__init__. Let through: `git` (creating a
    study records the checkout's commit with it, in milliseconds) and `ldconfig` (ctypes asks it
    for a library's path when a user's objective file first imports torch).
    """
    if item.get_closest_marker("slow") is not None:
        yield
        return
    popen_init = subprocess.Popen.__init__

    def refuse_training(*args: Any, **kwargs: Any) -> NoReturn:
        pytest.fail(f"{SLOW_HINT} (it trains)")

    def refuse_process(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        argv = [args] if isinstance(args, str | bytes | os.PathLike) else list(args)
        if Path(os.fsdecode(argv[0])).name not in QUICK_PROCESSES:
            pytest.fail(f"{SLOW_HINT} (it starts {os.fsdecode(argv[0])})")
        popen_init(self, args, *rest, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_train, "train_epoch", refuse_training)
        patch.setattr(subprocess.Popen, "__init__", refuse_process)
        yield


QUICK_PROCESSES = frozenset({"git", "ldconfig"})


# Hooks, not an autouse fixture: a function-scoped fixture is set up after module-scoped ones, so
# it would miss the dashboard server and `compose config` those start.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    """Guard the fixtures a test sets up, of any scope."""
    with refuse_slow_work(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Guard the test itself."""
    with refuse_slow_work(item):
        return (yield)


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh database on the PostgreSQL test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'workers.db'}"
        return
    with scratch_database() as url:
        yield url
