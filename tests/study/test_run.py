"""The run loop's exits: a Ctrl-C that surfaces as another error still reads as an interrupt."""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner

import hpsearch
from hpsearch.cli import main
from hpsearch.errors import INTERRUPTED_EXIT
from hpsearch.study import _optimize


class SignalsOnCleanup:
    """Sends SIGINT from __del__, where Python prints the KeyboardInterrupt and drops it."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, inside the finalizer


def ctrl_c_then_a_database_error(study: optuna.Study, *args: Any) -> None:
    """A trial starts; Ctrl-C lands where Python drops it; the next write fails instead.

    This is the shape seen when a Ctrl-C hits Optuna mid-commit. The timing of a real one
    cannot be reproduced in a test, so optimize_until is replaced by this sequence.
    """
    study.ask()  # a RUNNING trial owned by this process
    victim = SignalsOnCleanup()
    del victim
    gc.collect()
    raise RuntimeError("This session's transaction has been rolled back")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() outside optimize
def test_a_ctrl_c_that_surfaces_as_another_error_is_an_interrupt(
    monkeypatch: pytest.MonkeyPatch,
    make_study: Callable[..., Path],
    mnist_dir: Path,
    storage_url: str,
) -> None:
    monkeypatch.setattr(_optimize, "optimize_until", ctrl_c_then_a_database_error)
    monkeypatch.setattr("sys.unraisablehook", lambda unraisable: None)  # the dropped Ctrl-C
    args = ["run", "--study", str(make_study()), "--trials", "2", "--storage", storage_url]
    args += ["--data-dir", str(mnist_dir), "--device", "cpu", "--no-progress", "--workers", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == INTERRUPTED_EXIT, result.output
    assert "interrupted: finished trials are stored" in result.output
    trials = optuna.load_study(study_name="tiny", storage=storage_url).trials
    assert [t.state.name for t in trials] == ["FAIL"]  # not left RUNNING
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


@pytest.mark.slow
def test_pruned_trials_do_not_keep_their_models_alive(
    make_study: Callable[..., Path], mnist_dir: Path, storage_url: str
) -> None:
    """A pruned trial's traceback holds its model, optimizer and best weights in a reference
    cycle; on a GPU that memory stays taken until Python's collector happens to run."""
    from torch import nn

    from hpsearch.spec import load_spec

    path = make_study(max_epochs=3, pruner='kind = "threshold"\nlower = 0.999\nn_warmup_steps = 0')

    def live_linear_layers() -> int:
        return sum(type(o) is nn.Linear for o in gc.get_objects())

    gc.collect()
    before = live_linear_layers()
    gc.disable()  # only what hpsearch frees itself counts, not a lucky automatic collection
    try:
        summary = hpsearch.run(
            load_spec(str(path)),
            4,
            storage=storage_url,
            data_dir=mnist_dir,
            device="cpu",
            progress=False,
        )
        left = live_linear_layers() - before
    finally:
        gc.enable()
    assert summary.pruned == 4
    assert left <= 7, f"{left} Linear layers of finished trials still alive"  # one MLP at most
