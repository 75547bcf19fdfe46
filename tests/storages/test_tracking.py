"""Ctrl-C while a trial is being created is held until the trial's id is remembered."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import optuna
import pytest

from hpsearch.storages._tracking import TrackingRDBStorage, interrupt_deferred


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


# The thread ends by SystemExit, which Python's own thread excepthook ignores but pytest's reports;
# and Optuna warns that heartbeats belong in Study.optimize, whose entry this test replays by hand.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")
def test_a_heartbeat_thread_left_running_ends_once_the_process_stopped(tmp_path: Path) -> None:
    from optuna.storages._heartbeat import HeartbeatThread

    from hpsearch.storages._rdb import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 't.db'}", heartbeat=1, grace_period=5)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    beating = HeartbeatThread(trial._trial_id, storage)  # as Optuna starts it for a trial
    beating.start()  # ...and, Ctrl-C'd inside `with`'s entry, never joins
    try:
        assert storage.fail_own_running() == [trial._trial_id]
        thread = beating._thread
        assert thread is not None
        thread.join(timeout=5)  # one heartbeat interval is enough
        assert not thread.is_alive(), "a non-daemon heartbeat thread keeps the process alive"
    finally:
        beating.join()  # stop it in any case, or a failure here would hang pytest's exit
    assert [t.state.name for t in study.trials] == ["FAIL"]


def test_failing_own_trials_waits_out_a_lock_held_by_another_worker(tmp_path: Path) -> None:
    import sqlite3
    import threading

    path = tmp_path / "t.db"
    # a short busy timeout, so the lock fails a write at once as a racing WAL commit does
    storage = TrackingRDBStorage(
        f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 0.01}}
    )
    study = optuna.create_study(storage=storage, study_name="s")
    study.ask()
    other = sqlite3.connect(path, check_same_thread=False)  # another worker, mid-write
    other.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.5, other.commit)
    release.start()
    try:
        assert storage.fail_own_running() == storage.created
    finally:
        release.join()
        other.close()
    assert [t.state.name for t in study.trials] == ["FAIL"]


APPENDER = """
import sys
from hpsearch.storages._rdb import open_storage

storage = open_storage(sys.argv[1])
study_id = storage.get_study_id_from_name("s")
for i in range(int(sys.argv[3])):
    storage.append_study_user_attr(study_id, "log", f"{sys.argv[2]}-{i}")
"""


@pytest.mark.slow
def test_processes_appending_at_once_keep_every_entry(storage: str) -> None:
    import subprocess
    import sys

    from hpsearch.storages._rdb import open_storage

    optuna.create_study(storage=open_storage(storage), study_name="s")
    writers, each = 4, 25
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, storage, f"p{w}", str(each)])
        for w in range(writers)
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0] * writers
    log = optuna.load_study(study_name="s", storage=open_storage(storage)).user_attrs["log"]
    assert sorted(log) == sorted(f"p{w}-{i}" for w in range(writers) for i in range(each))
    for w in range(writers):  # each writer's entries in its own order
        assert [e for e in log if e.startswith(f"p{w}-")] == [f"p{w}-{i}" for i in range(each)]
