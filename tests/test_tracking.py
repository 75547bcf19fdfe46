"""Ctrl-C while a trial is being created is held until the trial's id is remembered."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest

from hpsearch.tracking import TrackingRDBStorage, interrupt_deferred


def test_sigint_inside_the_block_is_raised_after_it() -> None:
    reached = []
    with pytest.raises(KeyboardInterrupt), interrupt_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        reached.append("end of block")
    assert reached == ["end of block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_trials_a_study_creates_are_remembered(tmp_path: Path) -> None:
    storage = TrackingRDBStorage(f"sqlite:///{tmp_path / 't.db'}")
    study = optuna.create_study(storage=storage, study_name="s")  # wraps it in Optuna's cache
    study.ask()
    assert storage.created == [study.trials[0]._trial_id]
    assert storage.fail_own_running() == storage.created
    assert [t.state.name for t in study.trials] == ["FAIL"]


def test_trial_cut_during_creation_is_remembered_and_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = TrackingRDBStorage(f"sqlite:///{tmp_path / 't.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    create = optuna.storages.RDBStorage._create_new_trial

    def commit_then_ctrl_c(self: object, *args: object) -> object:
        trial = create(self, *args)  # type: ignore[arg-type]
        os.kill(os.getpid(), signal.SIGINT)  # after the commit, before the id is returned
        return trial

    monkeypatch.setattr(optuna.storages.RDBStorage, "_create_new_trial", commit_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        study.ask()
    assert storage.created and storage.fail_own_running() == storage.created
    assert [t.state.name for t in study.trials] == ["FAIL"]
