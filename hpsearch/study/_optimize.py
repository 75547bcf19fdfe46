"""The optimize loop of one process: its sampler and pruner, Ctrl-C, and database outages."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from hpsearch import _keys
from hpsearch.errors import HPSearchError, StorageError
from hpsearch.spec import StudySpec
from hpsearch.storages._rdb import masked
from hpsearch.study import _interrupts as interrupts
from hpsearch.study._create import ensure_study
from hpsearch.study._options import RunOptions
from hpsearch.study._summary import (
    RunSummary,
    count_trials,
    finished_states,
    stored_summary,
    study_attrs,
)

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpsearch.storages._tracking import TrackingRDBStorage

MAX_STORAGE_RETRIES = 30
RETRY_DELAY_S = 2.0
Objective = Callable[["optuna.Trial"], float]
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
    return make_objective(spec, opts.data_dir, device, store, opts.function)


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

    # Failed trials are reported by hpsearch itself; Optuna's per-trial log lines (and the
    # traceback it logs for a Ctrl-C) would only bury the progress line.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
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
    ensure_study(storage, spec, target, opts)  # a refused resume leaves no artifact folder
    store = open_store(opts.artifact_dir())  # the folder the objective's store writes to
    study = open_study(storage, spec, notify, opts.worker_tag)
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
                f"{self.limit}); the last, #{trial.number}: {error}; fix the objective, then run "
                "the study again to resume"
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
    """study.optimize up to `target` finished trials, retrying when the database drops out.

    A trial cut off by an outage stays RUNNING until its heartbeat goes stale; then Optuna
    marks it failed and RetryHeartbeatStaleTrialCallback queues it again.
    """
    import optuna

    from hpsearch.objectives._runner import TrialFailed

    deadline = None if timeout is None else time.monotonic() + timeout
    stop = optuna.study.MaxTrialsCallback(target, states=finished_states())
    for attempt in range(MAX_STORAGE_RETRIES + 1):
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            if len(study.get_trials(deepcopy=False, states=finished_states())) >= target:
                return  # the callback stops only after a trial: a late worker must not start one
            study.optimize(
                objective,
                timeout=remaining,
                callbacks=[stop, *callbacks],
                catch=(TrialFailed,),  # stored as FAIL with its error; the study goes on
            )
            return
        except Exception as exc:
            cause = _storage_cause(exc)
            if cause is None:
                raise
            if attempt == MAX_STORAGE_RETRIES:
                raise StorageError(
                    f"lost the database at {masked(url)} {attempt} times; check the server, then "
                    "run the same study again to resume"
                ) from exc
            notify(
                f"database unavailable ({type(cause).__name__}); retrying in {RETRY_DELAY_S:g} s"
            )
            time.sleep(RETRY_DELAY_S)


def _storage_cause(exc: BaseException) -> BaseException | None:
    """The database error behind an exception, if any (Optuna may wrap or mask it)."""
    import optuna
    import sqlalchemy.exc

    kinds = (
        optuna.exceptions.StorageInternalError,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def write_note(message: str) -> None:
    """Print a note without breaking the progress bar."""
    from tqdm import tqdm

    tqdm.write(message)
