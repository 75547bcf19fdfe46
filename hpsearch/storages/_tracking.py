"""An RDB storage that remembers the trials this process created, to fail them on Ctrl-C.

Optuna marks a trial failed when Ctrl-C lands inside the objective, but not when it lands
between creating the trial and calling the objective; that trial would stay RUNNING forever.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import TrialState

from hpsearch.storages._rdb import retry_race

FAIL_ATTEMPTS = 8  # about 2.8 s of waiting in all


class TrackingRDBStorage(RDBStorage):
    """RDBStorage plus the ids of the trials created through this instance."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created: list[int] = []
        self.stopped = False

    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
        """Create the trial and remember its id, with Ctrl-C held until both are done.

        This, not create_new_trial, is what a study calls: Optuna wraps an RDBStorage in a
        cache that goes to `_create_new_trial` directly.
        """
        with interrupt_deferred():
            trial = super()._create_new_trial(study_id, template_trial)
            self.created.append(trial._trial_id)
        return trial

    def record_heartbeat(self, trial_id: int) -> None:
        """Beat for a running trial, or, once this process has stopped, end the beating thread.

        Ctrl-C inside Optuna's `with get_heartbeat_thread(...)` entry leaves a started,
        non-daemon heartbeat thread that nothing stops, and Python waits for it at exit: the
        worker hung until `run --workers` killed it. SystemExit ends just this thread, quietly.
        """
        if self.stopped:
            raise SystemExit
        super().record_heartbeat(trial_id)

    def fail_own_running(self) -> list[int]:
        """Mark this process's trials that are still RUNNING as failed, and stop beating for them.

        Returns the ids of the trials it failed.
        """
        self.stopped = True
        return [trial_id for trial_id in self.created if self._fail_if_running(trial_id)]

    def _fail_if_running(self, trial_id: int) -> bool:
        """Fail one trial, retried: workers stopping together contend for SQLite's write lock.

        In WAL mode a write that races another commit fails at once ("database is locked")
        instead of waiting; without a retry, the trial stayed RUNNING after Ctrl-C.
        """
        try:
            return retry_race(lambda: self._fail_now(trial_id), _any_error, FAIL_ATTEMPTS, 0.1)
        except Exception:  # the database may be gone too; the heartbeat will catch it
            return False

    def _fail_now(self, trial_id: int) -> bool:
        """Fail the trial if it is still RUNNING; whether it was."""
        if self.get_trial(trial_id).state != TrialState.RUNNING:
            return False
        self.set_trial_state_values(trial_id, TrialState.FAIL)
        return True


def _any_error(exc: Exception) -> bool:
    """Any failure to fail a trial is worth another try before giving up."""
    return True


@contextmanager
def interrupt_deferred() -> Iterator[None]:
    """Hold a SIGINT that lands inside the block and deliver it to the previous handler after.

    Otherwise Ctrl-C between the database commit and the id being remembered would leave a
    RUNNING trial that fail_own_running cannot see.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held and callable(previous):
        previous(signal.SIGINT, None)
