"""The optimize loop of one process: its sampler and pruner, Ctrl-C, and database outages."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from hpsearch import _keys
from hpsearch.errors import HPSearchError, StorageError, arg
from hpsearch.spec import StudySpec
from hpsearch.storages._rdb import masked
from hpsearch.study import _interrupts as interrupts
from hpsearch.study._create import ensure_study
from hpsearch.study._options import RunOptions
from hpsearch.study._summary import (
    RunSummary,
    count_trials,
    done,
    finished_states,
    stored_summary,
    study_attrs,
)

if TYPE_CHECKING:
    from pathlib import Path

    import optuna
    from optuna.trial import FrozenTrial

    from hpsearch.storages._tracking import TrackingRDBStorage

ROOM_POLL_S = 0.5  # how often a worker at the total checks whether a running trial failed
MAX_STORAGE_RETRIES = 30
RETRY_DELAY_S = 2.0
Objective = Callable[["optuna.Trial"], float]
P = ParamSpec("P")
R = TypeVar("R")
Callback = Callable[["optuna.Study", "FrozenTrial"], None]


def prepare(spec: StudySpec, opts: RunOptions) -> Objective:
    """Threads, device and data: the objective, checked before anything is written."""
    from hpsearch.objectives._factory import make_objective
    from hpsearch.objectives._train import resolve_device, set_threads
    from hpsearch.storages._artifacts import check_writable, store_for

    check_writable(opts.artifact_dir())
    set_threads(opts.threads)
    device = resolve_device(opts.device)
    store = store_for(opts.artifact_dir())
    return make_objective(spec, opts.data_dir, device, store, opts.function, opts.worker_tag)


def configure_logging(verbose: bool, log_file: Path | None) -> None:
    """Optuna's own log lines: hidden, on standard error (`verbose`), and/or in `log_file`.

    Hidden by default: hpsearch reports failed trials itself, and Optuna's per-trial lines (and
    the traceback it logs for a Ctrl-C) would bury the progress line.
    """
    import logging

    import optuna

    logger = logging.getLogger("optuna")
    for handler in [h for h in logger.handlers if getattr(h, "hpsearch_log_file", False)]:
        logger.removeHandler(handler)  # from an earlier run in this process
        handler.close()
    if log_file is not None:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        form = "[%(levelname)s %(asctime)s pid %(process)d] %(message)s"
        handler.setFormatter(logging.Formatter(form))
        handler.hpsearch_log_file = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    optuna.logging.set_verbosity(logging.INFO if verbose or log_file else logging.ERROR)
    if verbose or log_file is None:
        optuna.logging.enable_default_handler()
    else:  # the file alone
        optuna.logging.disable_default_handler()


def open_study(
    storage: optuna.storages.RDBStorage,
    spec: StudySpec,
    notify: Callable[[str], None],
    worker_tag: str = "",
) -> optuna.Study:
    """Load the stored study with this process's sampler and pruner."""
    import optuna

    from hpsearch.objectives._runner import trial_seed
    from hpsearch.pruners._factory import make_pruner
    from hpsearch.samplers._factory import make_sampler

    attrs = study_attrs(storage, spec.name)
    # Resumed runs and parallel workers must not replay each other's random draws.
    mix = zlib.crc32(f"{worker_tag}|{count_trials(storage, spec.name, None)}".encode())
    return optuna.load_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(
            spec, trial_seed(spec.seed, mix), attrs.get(_keys.TRIALS_PER_ROUND), notify
        ),
        pruner=make_pruner(spec.pruner, spec.max_epochs),
    )


def optimize(
    spec: StudySpec,
    opts: RunOptions,
    storage: TrackingRDBStorage,
    target: int,
    notify: Callable[[str], None],
    objective: Objective,
) -> RunSummary:
    """Run trials in this process until the study holds `target` finished ones."""
    from hpsearch.storages._artifacts import open_store, prune_store
    from hpsearch.study._progress import TrialProgress

    started = time.perf_counter()
    # a worker starting while the database restarts waits for it, as a running one does
    riding_out(notify, opts.storage, ensure_study, storage, spec, target, opts)
    storage.total = target  # no trial is started beyond it (see TrackingRDBStorage)
    configure_logging(opts.verbose, opts.log_file)
    store = open_store(opts.artifact_dir())  # after the check: a refused resume leaves no folder
    study = riding_out(notify, opts.storage, open_study, storage, spec, notify, opts.worker_tag)
    progress = TrialProgress(study, target, enabled=opts.progress)

    def keep_disk_bounded(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state.name == "COMPLETE":
            prune_store(store, study, spec.keep_weights)

    callbacks: list[Callback] = [
        keep_disk_bounded,
        progress,
        lambda study, trial: interrupts.raise_if_requested(),
        FailureLimit(spec.max_failures),
    ]
    previous = interrupts.install_once()
    try:
        optimize_until(study, objective, target, opts.timeout, callbacks, notify, opts.storage)
    except BaseException as exc:
        storage.fail_own_running()  # cut off or crashed: no trial of this process stays RUNNING
        if interrupts.requested() and not isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt from exc  # Ctrl-C surfaced as another error in Optuna's tell
        raise
    finally:
        progress.close()
        interrupts.restore(previous)
    return stored_summary(storage, spec.name, target, time.perf_counter() - started)


class FailureLimit:
    """Stop the run after `limit` failed trials in a row: the objective is broken, not unlucky."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Count this process's failed trials; a finished one resets the count."""
        if trial.state.name != "FAIL":
            self.in_a_row = 0
            return
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            error = trial.user_attrs.get(_keys.ERROR, "no error recorded")
            raise HPSearchError(
                f"stopped after {self.in_a_row} failed trials in a row (max_failures = "
                f"{self.limit}); the last, #{trial.number}: {error}; fix the objective, then "
                f"resume with the same command and {arg('allow_changed_spec', True)} (a fix to "
                "the objective's code or study file is a change, recorded on the study)"
            )


def optimize_until(
    study: optuna.Study,
    objective: Objective,
    target: int,
    timeout: float | None,
    callbacks: list[Callback],
    notify: Callable[[str], None],
    url: str,
) -> None:
    """study.optimize up to `target` finished trials, starting over when the database drops out.

    A trial's own storage calls ride out an outage shorter than the grace period; a longer one
    fails it, and once its heartbeat is stale Optuna queues it again
    (RetryHeartbeatStaleTrialCallback). Starting a trial during an outage is retried here.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    riding_out(notify, url, _to_total, study, objective, target, deadline, callbacks)


def riding_out(
    notify: Callable[[str], None], url: str, call: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """call(*args), started over while the database is unreachable, with a note each time.

    After MAX_STORAGE_RETRIES outages in a row the run stops with one StorageError line.
    """
    import tenacity

    from hpsearch.storages._retry import is_outage, outage_cause

    def say(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        cause = type(outage_cause(error) if error else None).__name__
        notify(f"database unavailable ({cause}); retrying in {RETRY_DELAY_S:g} s")

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_outage),
        stop=tenacity.stop_after_attempt(MAX_STORAGE_RETRIES + 1),
        wait=tenacity.wait_fixed(RETRY_DELAY_S),
        before_sleep=say,
        reraise=True,
    )
    try:
        return retrying(call, *args, **kwargs)
    except Exception as exc:
        if not is_outage(exc):
            raise
        raise StorageError(
            f"lost the database at {masked(url)} {MAX_STORAGE_RETRIES + 1} times; check the "
            "server, then run the same study again to resume"
        ) from exc


def _to_total(
    study: optuna.Study,
    objective: Objective,
    target: int,
    deadline: float | None,
    callbacks: list[Callback],
) -> None:
    """Optimize until the total, then until no dead worker's trial is left RUNNING."""
    import optuna

    from hpsearch.objectives._runner import TrialFailed
    from hpsearch.storages._tracking import NoRoom

    stop = optuna.study.MaxTrialsCallback(target, states=finished_states())
    requeue_cut_off(study)  # after an outage: this process's trials it failed
    while True:
        if done(study._storage, study.study_name, target):
            return  # the callbacks stop only after a trial: a late worker must not start one
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if remaining == 0.0:
            return
        try:
            study.optimize(
                objective,
                timeout=remaining,
                callbacks=[stop, *callbacks],
                catch=(TrialFailed,),  # stored as FAIL with its error; the study goes on
            )
        except NoRoom:  # other workers run the trials the total still needs
            pause_for_room(study)
            continue
        except ValueError as exc:
            if not taken_away(study, exc):
                raise
            continue  # failed as stale by another worker, which queued its retry: go on
        if done(study._storage, study.study_name, target) and not settle(study):
            return


def taken_away(study: optuna.Study, exc: ValueError) -> bool:
    """Whether Optuna refused to finish this process's last trial because another worker had.

    A database outage longer than the grace period leaves a live trial's heartbeat stale; the
    first worker to check fails it and queues its retry, and this process's result for it is
    then refused ("Cannot tell a FAIL trial").
    """
    from optuna.trial import TrialState

    from hpsearch.storages._rdb import rdb_backend

    own = getattr(rdb_backend(study._storage), "created", [])
    if not own or not str(exc).startswith("Cannot tell a"):
        return False
    return bool(study._storage.get_trial(own[-1]).state == TrialState.FAIL)


def pause_for_room(study: optuna.Study) -> None:
    """Pause while other workers run the last trials; the next attempt to start one counts again.

    A dead worker's trial goes stale after the grace period and is failed here, which opens its
    place (and queues its retry) for this worker.
    """
    from hpsearch.storages._rdb import fail_stale_trials

    interrupts.raise_if_requested()
    time.sleep(ROOM_POLL_S)
    fail_stale_trials(study)


def requeue_cut_off(study: optuna.Study) -> None:
    """Queue again this process's trials that a database outage failed (they have no error).

    A trial cut off by an outage longer than the grace period is told FAIL when the database
    returns; unlike a dead worker's trial it goes stale never, so nothing else retries it.
    """
    from optuna.storages import RetryFailedTrialCallback
    from optuna.trial import TrialState

    from hpsearch.storages._rdb import rdb_backend

    own = set(getattr(rdb_backend(study._storage), "created", ()))
    if not own:
        return
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get(_keys.RETRY_OF) for t in trials}
    retry = RetryFailedTrialCallback(max_retry=3)
    for trial in trials:
        cut_off = trial.state == TrialState.FAIL and _keys.ERROR not in trial.user_attrs
        if cut_off and trial._trial_id in own and trial.number not in retried:
            retry(study, trial)


def settle(study: optuna.Study) -> bool:
    """At the total: wait until no trial is left RUNNING by a dead worker; True to run retries.

    A trial whose worker died goes stale within the grace period; it is then failed and its
    retry queued, which this process runs. A live trial is its own worker's to finish.
    """
    from optuna.trial import TrialState

    from hpsearch.storages._rdb import fail_stale_trials, rdb_backend

    backend = rdb_backend(study._storage)
    if backend is None or backend.heartbeat_interval is None:
        return False
    interval = backend.heartbeat_interval
    grace = backend.grace_period or 2 * interval  # Optuna's own default
    deadline = time.monotonic() + grace + 2 * interval
    while True:
        fail_stale_trials(study)
        states = (TrialState.RUNNING, TrialState.WAITING)
        left = study.get_trials(deepcopy=False, states=states)
        if any(t.state == TrialState.WAITING for t in left):
            return True
        if not left or time.monotonic() > deadline:
            return False
        time.sleep(min(interval, 1.0))


def fail_stale(storage: optuna.storages.BaseStorage, name: str) -> None:
    """Fail, and queue again, the trials of dead workers: at start, before saying finished."""
    import optuna

    from hpsearch.storages._rdb import fail_stale_trials

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return  # no such study yet
    fail_stale_trials(study)


def write_note(message: str) -> None:
    """Print a note without breaking the progress bar."""
    from tqdm import tqdm

    tqdm.write(message)
