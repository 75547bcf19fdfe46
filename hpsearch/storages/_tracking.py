"""An RDB storage that remembers the trials this process runs, to fail them on Ctrl-C.

Optuna marks a trial failed when Ctrl-C lands inside the objective, but not when it lands
between creating the trial and calling the objective; that trial would stay RUNNING forever.
A trial belongs to the process that starts running it: the one that creates it RUNNING, or
the one that takes a queued (WAITING) trial, such as the retry another process queued for a
dead worker's trial. Cleanup fails only those.
"""

from __future__ import annotations

import functools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from optuna.storages import RDBStorage
from optuna.trial import TrialState

from hpsearch.storages._retry import is_outage, retry_race, ride_out

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial
    from sqlalchemy.orm import Session

FAIL_ATTEMPTS = 8  # about 2.8 s of waiting in all
T = TypeVar("T")
# Calls a running trial makes (reports, attributes, its result, the pruner's and sampler's
# reads) that are safe to repeat: ridden out through a database outage. Creating a trial is
# not among them (a repeat after a lost acknowledgement would strand a second trial); an
# outage there is the optimize loop's to retry.
RIDDEN = (
    "set_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial",
    "get_all_trials",
    "get_best_trial",
    "get_n_trials",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_id_from_study_id_trial_number",
    "_get_stale_trial_ids",
)


class NoRoom(Exception):
    """Finished and running trials already make the study's total: start no trial now."""


class TrackingRDBStorage(RDBStorage):
    """RDBStorage plus the ids of the trials this process runs, and the study's total."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created: list[int] = []
        self.stopped = False
        self.total: int | None = None  # set by a process that runs trials up to a total

    def _get_prepared_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None, session: Session
    ) -> Any:
        """A new trial, but a RUNNING one only while the total has room (NoRoom otherwise).

        Counted and inserted in one transaction under the study's write lock, so workers that
        finish together never start more trials than the total needs. Queued trials (retries,
        enqueued ones) are always created.
        """
        if template_trial is None and self.total is not None:
            _claim_room(session, study_id, self.total)
        return super()._get_prepared_new_trial(study_id, template_trial, session)

    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
        """Create the trial and remember its id, with Ctrl-C held until both are done.

        This, not create_new_trial, is what a study calls: Optuna wraps an RDBStorage in a
        cache that goes to `_create_new_trial` directly.
        """
        with interrupt_deferred():
            trial = super()._create_new_trial(study_id, template_trial)
            if trial.state == TrialState.RUNNING:  # not a retry queued for another process
                self._own(trial._trial_id)
        return trial

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
        """Take a queued trial to RUNNING (it is then this process's), or finish one."""
        with interrupt_deferred():
            change = RDBStorage.set_trial_state_values
            taken: bool = self.ridden(lambda: change(self, trial_id, state, values))
            if taken and state == TrialState.RUNNING:
                self._own(trial_id)
        return taken

    def _own(self, trial_id: int) -> None:
        """Remember a trial this process runs, and give it a heartbeat from its first moment.

        Optuna's stale check ignores a trial that never beat, so a process killed before its
        heartbeat thread started would leave the trial RUNNING forever.
        """
        self.created.append(trial_id)
        if self.heartbeat_interval is not None:
            super().record_heartbeat(trial_id)

    def record_heartbeat(self, trial_id: int) -> None:
        """Beat for a running trial, or, once this process has stopped, end the beating thread.

        Ctrl-C inside Optuna's `with get_heartbeat_thread(...)` entry leaves a started,
        non-daemon heartbeat thread that nothing stops, and Python waits for it at exit: the
        worker hung until `run --workers` killed it. SystemExit ends just this thread, quietly.
        """
        if self.stopped:
            raise SystemExit
        try:
            self.ridden(lambda: RDBStorage.record_heartbeat(self, trial_id))
        except Exception as exc:  # still away after the grace period: the next beat tries again
            if not is_outage(exc):  # (raising would end Optuna's beating thread, with a traceback)
                raise

    def ridden(self, call: Callable[[], T]) -> T:
        """call(), retried through a database outage for up to the grace period.

        A trial silent that long is failed and retried by the other workers anyway; a shorter
        outage costs no work. Without heartbeats (a command that only reads) there is no retry.
        """
        if not (self.heartbeat_interval and self.grace_period) or self.stopped:
            return call()
        return ride_out(self.grace_period)(call)

    def append_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        """Append `value` to the study's list attribute `key`, under the study's write lock.

        Reading the list and setting it again would let two processes appending at once (two
        resumes that each record a change) drop one entry; under the lock each sees the other's.
        """
        import json

        from optuna.storages._rdb.models import StudyModel, StudyUserAttributeModel
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(self.scoped_session) as session:
            _lock_study(session, study_id)
            study = StudyModel.find_or_raise_by_id(study_id, session)
            stored = StudyUserAttributeModel.find_by_study_and_key(study, key, session)
            if stored is None:
                dumped = json.dumps([value])
                session.add(StudyUserAttributeModel(study_id=study_id, key=key, value_json=dumped))
            else:
                stored.value_json = json.dumps([*json.loads(stored.value_json), value])

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


def _claim_room(session: Session, study_id: int, total: int) -> None:
    """Take the study's write lock, then raise NoRoom if finished + running reach the total.

    The no-op update takes SQLite's write lock before counting (a read alone would not);
    on PostgreSQL Optuna's SELECT ... FOR UPDATE of the study row already holds it.
    """
    from optuna.storages._rdb.models import TrialModel
    from sqlalchemy import func, select

    _lock_study(session, study_id)
    taken_states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    taken = session.scalar(
        select(func.count(TrialModel.trial_id)).where(
            TrialModel.study_id == study_id, TrialModel.state.in_(taken_states)
        )
    )
    if (taken or 0) >= total:
        raise NoRoom


def _lock_study(session: Session, study_id: int) -> None:
    """Hold the study's write lock until the session ends: a no-op update of its row.

    SQLite takes its database write lock; PostgreSQL locks the row. Either way a second
    process doing the same waits, then reads what the first committed.
    """
    from optuna.storages._rdb.models import StudyModel
    from sqlalchemy import update

    study = StudyModel.study_id == study_id
    session.execute(update(StudyModel).where(study).values(study_name=StudyModel.study_name))


def _riding(name: str) -> Callable[..., Any]:
    """RDBStorage's method `name`, ridden through outages (see RIDDEN)."""
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def wrapper(self: TrackingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self.ridden(lambda: method(self, *args, **kwargs))

    return wrapper


for _name in RIDDEN:
    setattr(TrackingRDBStorage, _name, _riding(_name))


def _any_error(exc: BaseException) -> bool:
    """Any failure to fail a trial is worth another try before giving up (not Ctrl-C)."""
    return isinstance(exc, Exception)


@contextmanager
def interrupt_deferred() -> Iterator[None]:
    """Hold a SIGINT or SIGTERM landing inside the block and deliver it to the handler after.

    Otherwise Ctrl-C between the database commit and the id being remembered would leave a
    RUNNING trial that fail_own_running cannot see.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[signal.Signals] = []

    def hold(signum: int, frame: object) -> None:
        held.append(signal.Signals(signum))

    signals = (signal.SIGINT, signal.SIGTERM)  # `run` stops its workers with SIGTERM
    previous = {sig: signal.signal(sig, hold) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not held:
        return
    handler = previous[held[0]]
    if callable(handler):
        handler(held[0], None)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(held[0])
