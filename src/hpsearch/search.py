"""Running a study: open storage, check it, load data once, optimize up to the total."""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import interrupts
from hpsearch.errors import StorageError, UsageError
from hpsearch.spec import StudySpec, with_run_settings
from hpsearch.storage import DEFAULT_STORAGE, masked, open_storage, stored_direction

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpsearch.tracking import TrackingRDBStorage


TARGET_ATTR = "target_trials"
MAX_STORAGE_RETRIES = 30
RETRY_DELAY_S = 2.0


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices that shape one run without changing the study file."""

    trials: int | None
    storage: str = DEFAULT_STORAGE
    data_dir: Path = Path("data")
    device: str = "auto"
    seed: int | None = None
    timeout: float | None = None
    max_epochs: int | None = None
    progress: bool = True
    threads: int | None = None
    heartbeat: int = 10
    grace_period: int = 60
    worker_tag: str = ""
    allow_changed_spec: bool = False
    hash_data: bool = True
    artifacts: Path | None = None

    def artifact_dir(self) -> Path:
        """--artifacts, or the default folder beside the SQLite file."""
        from hpsearch.artifacts import default_dir

        return self.artifacts or default_dir(self.storage)


@dataclass(frozen=True)
class RunSummary:
    """Where the study stands after a run."""

    name: str
    target: int
    complete: int
    pruned: int
    failed: int
    best: FrozenTrial | None
    seconds: float

    @property
    def finished(self) -> int:
        """Trials that count toward the total: completed and pruned."""
        return self.complete + self.pruned


def with_overrides(spec: StudySpec, opts: RunOptions) -> StudySpec:
    """The spec with --seed and --max-epochs applied."""
    return with_run_settings(spec, opts.seed, opts.max_epochs)


def check_options(opts: RunOptions) -> None:
    """Reject values click cannot range-check for us with a one-line message."""
    if opts.trials is not None and opts.trials < 1:
        raise UsageError(
            f"--trials must be ≥ 1 but got {opts.trials}; give the study's total, e.g. --trials 200"
        )
    if opts.max_epochs is not None and opts.max_epochs < 1:
        raise UsageError(f"--max-epochs must be ≥ 1 but got {opts.max_epochs}")
    if opts.timeout is not None and not opts.timeout > 0:  # nan too
        raise UsageError(f"--timeout must be > 0 seconds but got {opts.timeout:g}")
    if opts.threads is not None and opts.threads < 1:
        raise UsageError(f"--threads must be ≥ 1 but got {opts.threads}")
    if opts.heartbeat < 1 or opts.grace_period <= opts.heartbeat:
        raise UsageError(
            f"need 1 ≤ --heartbeat < --grace-period but got {opts.heartbeat} and "
            f"{opts.grace_period}"
        )


def connect(spec: StudySpec, opts: RunOptions, create: bool = True) -> TrackingRDBStorage:
    """Validated options, an open storage with heartbeats, and a direction check."""
    check_options(opts)
    storage = open_storage(opts.storage, opts.heartbeat, opts.grace_period, create)
    check_direction(storage, spec, opts.storage)
    return storage


def ensure_study(
    storage: optuna.storages.RDBStorage,
    spec: StudySpec,
    target: int,
    opts: RunOptions | None = None,
) -> None:
    """Create the study if needed (with its manifest), or check a resumed one against it.

    Records the total and the narrowing round length; a resumed study whose search space or
    data changed is refused unless --allow-changed-spec, and then the change is recorded.
    """
    import optuna

    from hpsearch import manifest
    from hpsearch.data import data_files
    from hpsearch.samplers import TRIALS_PER_ROUND_ATTR, trials_per_round

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, study_name=spec.name, direction=spec.direction, load_if_exists=True
    )
    attrs = study.user_attrs
    data = None
    if opts is not None and opts.data_dir is not None and opts.hash_data:
        data = manifest.data_hash(data_files(spec.data, opts.data_dir))
    if manifest.MANIFEST_ATTR not in attrs:
        device = opts.device if opts is not None else ""
        if opts is not None and opts.hash_data:  # a training run: record the real device
            from hpsearch.train import resolve_device

            device = str(resolve_device(opts.device))
        study.set_user_attr(manifest.MANIFEST_ATTR, manifest.build(spec, device, data))
        study.set_user_attr(manifest.SIGNATURE_ATTR, manifest.signature(spec))
        study.set_user_attr("study_file_hash", spec.text_hash)
        study.set_user_attr("metric", spec.training.metric)
    else:
        allow = opts is not None and opts.allow_changed_spec
        change = manifest.check(attrs, spec, data, allow)
        if change is not None:
            history = [*attrs.get(manifest.CHANGES_ATTR, []), change]
            study.set_user_attr(manifest.CHANGES_ATTR, history)
            study.set_user_attr(manifest.SIGNATURE_ATTR, manifest.signature(spec))
    if data is not None and attrs.get(manifest.DATA_HASH_ATTR) != data:
        study.set_user_attr(manifest.DATA_HASH_ATTR, data)
    if attrs.get(TARGET_ATTR) != target:
        study.set_user_attr(TARGET_ATTR, target)
    if spec.sampler.kind == "narrowing" and TRIALS_PER_ROUND_ATTR not in attrs:
        study.set_user_attr(TRIALS_PER_ROUND_ATTR, trials_per_round(spec, target, None))


def open_study(
    storage: optuna.storages.RDBStorage,
    spec: StudySpec,
    notify: Callable[[str], None],
    worker_tag: str = "",
) -> optuna.Study:
    """Load the stored study with this process's sampler and pruner."""
    import optuna

    from hpsearch.objectives.base import trial_seed
    from hpsearch.pruners import make_pruner

    # Failed trials are reported by hpsearch itself; Optuna's per-trial log lines (and the
    # traceback it logs for a Ctrl-C) would only bury the progress line.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    from hpsearch.samplers import TRIALS_PER_ROUND_ATTR, make_sampler

    attrs = _study_attrs(storage, spec.name)
    # Resumed runs and parallel workers must not replay each other's random draws.
    mix = zlib.crc32(f"{worker_tag}|{_count(storage, spec.name, None)}".encode())
    return optuna.load_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(
            spec, trial_seed(spec.seed, mix), attrs.get(TRIALS_PER_ROUND_ATTR), notify
        ),
        pruner=make_pruner(spec.pruner, spec.training.max_epochs),
    )


def create(spec: StudySpec, opts: RunOptions) -> RunSummary:
    """Create (or update the total of) a study without running trials: `hpsearch create`."""
    import optuna

    spec = with_overrides(spec, opts)
    if opts.trials is None:
        raise UsageError("--trials is required; give the study's total, e.g. --trials 200")
    storage = connect(spec, opts)
    ensure_study(storage, spec, opts.trials, dataclasses.replace(opts, hash_data=False))
    return summarize(optuna.load_study(study_name=spec.name, storage=storage), opts.trials, 0)


def run_study(
    spec: StudySpec, opts: RunOptions, notify: Callable[[str], None] | None = None
) -> RunSummary:
    """Run trials in this process until the study holds `opts.trials` finished ones.

    `notify` receives one-line notes from the sampler (e.g. a range stuck at an edge); by
    default they are written above the progress bar.
    """
    if opts.trials is None:
        raise UsageError("--trials is required; give the study's total, e.g. --trials 200")
    spec = with_overrides(spec, opts)
    check_options(opts)
    objective = prepare(spec, opts)  # a bad device or data set fails before any file exists
    storage = connect(spec, opts)
    if finished_count(storage, spec.name) >= opts.trials:
        ensure_study(storage, spec, opts.trials, opts)
        return stored_summary(storage, spec, opts.trials, 0.0)
    return _work(spec, opts, storage, opts.trials, notify or _write, objective)


def run_worker(
    spec: StudySpec, opts: RunOptions, notify: Callable[[str], None] | None = None
) -> RunSummary:
    """Join an existing study and run trials until its recorded total: `hpsearch worker`."""
    spec = with_overrides(spec, opts)
    storage = connect(spec, opts, create=False)  # a worker joins; it never starts a database
    attrs = _study_attrs(storage, spec.name)
    if not attrs and stored_direction(storage, spec.name) is None:
        raise StorageError(
            f"no study '{spec.name}' in {masked(opts.storage)}; create it first with "
            f"`hpsearch create --study {spec.cli_name} --trials N` (or `hpsearch run`)"
        )
    target = opts.trials or attrs.get(TARGET_ATTR)
    if not target:
        raise UsageError(f"study '{spec.name}' has no recorded total; pass --trials N")
    return _work(spec, opts, storage, int(target), notify or _write, prepare(spec, opts))


def prepare(spec: StudySpec, opts: RunOptions) -> Callable[[optuna.Trial], float]:
    """Threads, device and data: the objective, checked before anything is written."""
    from hpsearch.artifacts import store_for
    from hpsearch.objectives import make_objective
    from hpsearch.train import resolve_device, set_threads

    set_threads(opts.threads)
    device = resolve_device(opts.device)
    return make_objective(spec, opts.data_dir, device, store_for(opts.artifact_dir()))


def _work(
    spec: StudySpec,
    opts: RunOptions,
    storage: TrackingRDBStorage,
    target: int,
    notify: Callable[[str], None],
    objective: Callable[[optuna.Trial], float],
) -> RunSummary:
    """Optimize until the target, riding out storage outages."""
    from hpsearch.artifacts import open_store, prune_store
    from hpsearch.progress import TrialProgress

    started = time.perf_counter()
    store = open_store(opts.artifact_dir())  # the folder the objective's store writes to
    ensure_study(storage, spec, target, opts)
    study = open_study(storage, spec, notify, opts.worker_tag)
    progress = TrialProgress(study, target, enabled=opts.progress)

    def keep_disk_bounded(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state.name == "COMPLETE":
            prune_store(store, study, spec.keep_weights)

    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]] = [
        keep_disk_bounded,
        progress,
        lambda study, trial: interrupts.raise_if_requested(),
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
    return stored_summary(storage, spec, target, time.perf_counter() - started)


def optimize_until(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    target: int,
    timeout: float | None,
    callbacks: list[Callable[[optuna.Study, FrozenTrial], None]],
    notify: Callable[[str], None],
    url: str,
) -> None:
    """study.optimize up to `target` finished trials, retrying when the database drops out.

    A trial cut off by an outage stays RUNNING until its heartbeat goes stale; then Optuna
    marks it failed and RetryHeartbeatStaleTrialCallback queues it again.
    """
    import optuna

    deadline = None if timeout is None else time.monotonic() + timeout
    stop = optuna.study.MaxTrialsCallback(target, states=_finished_states())
    for attempt in range(MAX_STORAGE_RETRIES + 1):
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            if len(study.get_trials(deepcopy=False, states=_finished_states())) >= target:
                return  # the callback stops only after a trial: a late worker must not start one
            study.optimize(objective, timeout=remaining, callbacks=[stop, *callbacks])
            return
        except Exception as exc:
            cause = _storage_cause(exc)
            if cause is None:
                raise
            if attempt == MAX_STORAGE_RETRIES:
                raise StorageError(
                    f"lost the database at {masked(url)} {attempt} times; check the server, then "
                    "re-run the same command to resume"
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


def stored_summary(
    storage: optuna.storages.RDBStorage, spec: StudySpec, target: int, seconds: float
) -> RunSummary:
    """Summarize the stored study."""
    import optuna

    return summarize(optuna.load_study(study_name=spec.name, storage=storage), target, seconds)


def check_direction(storage: optuna.storages.RDBStorage, spec: StudySpec, url: str) -> None:
    """A stored study with the same name must optimize in the same direction."""
    stored = stored_direction(storage, spec.name)
    if stored is not None and stored != spec.direction:
        raise StorageError(
            f"study '{spec.name}' in {masked(url)} is set to {stored} but the study file "
            f"{spec.direction}s {spec.training.metric}; give the study file another name = ... "
            "or use another --storage"
        )


def check_stored_metric(study: optuna.Study, spec: StudySpec, url: str) -> None:
    """A command that reads a study must rank its trials by the metric they were run on."""
    metric = study.user_attrs.get("metric", spec.training.metric)
    direction = study.direction.name.lower()
    if metric != spec.training.metric or direction != spec.direction:
        raise StorageError(
            f"study '{spec.name}' in {masked(url)} was run to {direction} {metric} but the "
            f"study file says {spec.training.metric}; use the study file it was run with"
        )


def _write(message: str) -> None:
    """Print a note without breaking the progress bar."""
    from tqdm import tqdm

    tqdm.write(message)


def _study_attrs(storage: optuna.storages.RDBStorage, name: str) -> dict[str, Any]:
    """A stored study's user attributes, or {} when it does not exist yet."""
    try:
        return storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    except KeyError:
        return {}


def _finished_states() -> tuple[optuna.trial.TrialState, ...]:
    """Completed and pruned trials count toward --trials; failed ones are redone."""
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def finished_count(storage: optuna.storages.RDBStorage, name: str) -> int:
    """Trials that count toward the study's total (0 when there is no such study)."""
    return _count(storage, name, _finished_states())


def _count(
    storage: optuna.storages.RDBStorage,
    name: str,
    states: tuple[optuna.trial.TrialState, ...] | None,
) -> int:
    """How many trials of a study (possibly absent) are in the given states."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False, states=states))


def summarize(study: optuna.Study, target: int, seconds: float) -> RunSummary:
    """Count trial states and pick the best completed trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return RunSummary(
        name=study.study_name,
        target=target,
        complete=len(complete),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        best=study.best_trial if complete else None,
        seconds=seconds,
    )
