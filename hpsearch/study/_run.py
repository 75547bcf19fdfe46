"""Running, creating and joining a study: the entry points of `hpsearch run/create/worker`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch import _keys
from hpsearch.errors import StorageError, UsageError, arg
from hpsearch.spec import StudySpec, load_spec
from hpsearch.storages._rdb import DEFAULT_STORAGE, masked, stored_direction
from hpsearch.study._connect import close, connect
from hpsearch.study._create import create_study, ensure_study
from hpsearch.study._optimize import fail_stale, optimize, prepare, write_note
from hpsearch.study._options import RunOptions, check_options, require_total, with_overrides
from hpsearch.study._summary import RunSummary, done, stored_summary, study_attrs

if TYPE_CHECKING:
    from hpsearch.objectives._runner import ObjectiveFn
    from hpsearch.reporting._dashboard import Alongside

StudyArg = str | os.PathLike[str] | StudySpec


def run(
    study: StudyArg,
    trials: int,
    *,
    storage: str = DEFAULT_STORAGE,
    data_dir: str | os.PathLike[str] = "data",
    device: str = "auto",
    workers: int | None = None,
    gpus: str | None = None,
    workers_per_gpu: int = 1,
    threads: int | None = None,
    seed: int | None = None,
    max_epochs: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
    allow_changed_spec: bool = False,
    artifacts: str | os.PathLike[str] | None = None,
    heartbeat: int = 10,
    grace_period: int = 60,
    objective: ObjectiveFn | None = None,
    verbose: bool = False,
    log_file: str | os.PathLike[str] | None = None,
    dashboard_port: int | None = None,
) -> RunSummary:
    """Run a study until it holds `trials` finished trials, as `hpsearch run` does.

    Trials already in storage count toward the total, so calling it again after an
    interruption runs only the remainder. With several workers (the default on a machine with
    several cores or GPUs), the trials run in that many workers on the same storage: on the CPU
    this process and `hpsearch worker` processes beside it, on GPUs one process per worker.

    Args:
        study: A shipped study's name (see `hpsearch studies`), a path to a study file, or a
            spec from :func:`load_spec`.
        trials: The study's total of finished (complete or pruned) trials.
        storage: A SQLAlchemy URL; SQLite by default, PostgreSQL for workers on many machines.
        data_dir: The folder that holds the data sets (MNIST is downloaded there if absent).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"``.
        workers: Worker processes to start. Default: one per visible GPU when training on GPUs,
            else one single-thread worker per CPU core (one core: this process alone); with
            `objective`, this process alone. ``1`` keeps every trial in this process.
        gpus: ``"all"`` or indices like ``"0,1"``: pin each worker to one GPU.
        workers_per_gpu: Workers sharing one GPU, with `gpus`.
        threads: torch CPU threads per worker (default: the cores shared among the workers).
        seed: Overrides the study file's seed (recorded when the study is created).
        max_epochs: Overrides ``training.max_epochs`` (recorded when the study is created).
        timeout: Stop starting new trials after this many seconds.
        progress: Show the live progress line.
        allow_changed_spec: Resume although the study file, seed, epochs or data changed; the
            change is recorded on the study.
        artifacts: Folder for the best epochs' weights (default: ``<db>-artifacts`` beside a
            SQLite file).
        heartbeat: Seconds between a running trial's heartbeats.
        grace_period: A trial silent this long is marked failed and retried.
        objective: A function ``(params, ctx) -> float`` to call instead of the study file's
            ``objective.entry`` (e.g. one defined in a notebook); it runs in this process only.
        verbose: Show Optuna's own log lines on standard error.
        log_file: Also write Optuna's log lines to this file (appended).
        dashboard_port: Serve optuna-dashboard on ``127.0.0.1:<port>`` while the run goes on.

    Returns:
        Where the study stands: its counts by state and its best trial.

    Example:
        >>> import hpsearch
        >>> summary = hpsearch.run("mnist-reg", trials=20, storage="sqlite:///mnist.db")
        >>> summary.best.params if summary.best else None
    """
    spec = _as_spec(study)
    opts = RunOptions(
        trials=trials,
        storage=storage,
        data_dir=Path(data_dir),
        device=device,
        seed=seed,
        timeout=timeout,
        max_epochs=max_epochs,
        progress=progress,
        threads=threads,
        heartbeat=heartbeat,
        grace_period=grace_period,
        allow_changed_spec=allow_changed_spec,
        artifacts=None if artifacts is None else Path(artifacts),
        function=objective,
        verbose=verbose,
        log_file=None if log_file is None else Path(log_file),
    )
    if workers is None and gpus is None and workers_per_gpu == 1 and objective is None:
        workers, gpus = default_workers(device, threads)
    here = (workers or 1) == 1 and gpus is None and workers_per_gpu == 1
    if objective is not None and not here:
        raise UsageError(
            f"{arg('objective')} is a function of this process, which worker processes cannot "
            f"import; name it in the study file's objective.entry to use {arg('workers')}"
        )
    check_options(opts)
    if objective is None:
        from hpsearch.objectives._factory import require_entry

        require_entry(spec)
    dashboard = None if dashboard_port is None else _bind_dashboard(dashboard_port)
    try:
        if here:
            return run_here(spec, opts, dashboard=dashboard)
        return _run_workers(spec, opts, workers, gpus, workers_per_gpu, dashboard)
    finally:
        if dashboard is not None:
            dashboard.close()


def create(
    study: StudyArg,
    trials: int,
    *,
    storage: str = DEFAULT_STORAGE,
    seed: int | None = None,
    allow_changed_spec: bool = False,
) -> RunSummary:
    """Create a study for workers to join, or change its total, without running a trial.

    Creating is idempotent: a study that exists is checked against its study file.

    Args:
        study: A shipped study's name, a path to a study file, or a spec.
        trials: The study's total of finished trials; workers stop when it is reached.
        storage: A SQLAlchemy URL that every worker can reach.
        seed: Overrides the study file's seed.
        allow_changed_spec: Accept (and record) a study file that changed since creation.

    Returns:
        The stored study's counts.

    Example:
        >>> import hpsearch
        >>> url = "postgresql+psycopg://hpsearch:secret@db/hpsearch"
        >>> hpsearch.create("mnist-narrow", trials=200, storage=url).target
        200
    """
    spec = _as_spec(study)
    opts = RunOptions(trials, storage, seed=seed, allow_changed_spec=allow_changed_spec)
    check_options(opts)
    return create_study(spec, opts)


def join(
    study: StudyArg,
    *,
    trials: int | None = None,
    storage: str = DEFAULT_STORAGE,
    data_dir: str | os.PathLike[str] = "data",
    device: str = "auto",
    threads: int | None = None,
    seed: int | None = None,
    max_epochs: int | None = None,
    timeout: float | None = None,
    progress: bool = True,
    allow_changed_spec: bool = False,
    artifacts: str | os.PathLike[str] | None = None,
    heartbeat: int = 10,
    grace_period: int = 60,
    tag: str | None = None,
    verbose: bool = False,
    log_file: str | os.PathLike[str] | None = None,
) -> RunSummary:
    """Join an existing study as one worker and run trials until its total, as `hpsearch worker`.

    The study must exist (see :func:`create`); a worker never creates a database.

    Args:
        study: A shipped study's name, a path to a study file, or a spec.
        trials: Overrides the total recorded on the study.
        storage: The SQLAlchemy URL the study was created in.
        data_dir: The folder that holds the data sets.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:<i>"``.
        threads: torch CPU threads for this worker.
        seed: Overrides the study file's seed (must match the study's).
        max_epochs: Overrides ``training.max_epochs`` (must match the study's).
        timeout: Stop starting new trials after this many seconds.
        progress: Show the live progress line.
        allow_changed_spec: Join although the study file changed; the change is recorded.
        artifacts: Folder for the best epochs' weights, shared by every worker.
        heartbeat: Seconds between a running trial's heartbeats.
        grace_period: A trial silent this long is marked failed and retried.
        tag: Mixed into this worker's sampler seed (default: host name and process id).
        verbose: Show Optuna's own log lines on standard error.
        log_file: Also write Optuna's log lines to this file (appended).

    Returns:
        Where the study stands when its total is reached.

    Example:
        >>> import hpsearch
        >>> url = "postgresql+psycopg://hpsearch:secret@db/hpsearch"
        >>> hpsearch.join("mnist-narrow", storage=url, device="cuda").finished
    """
    import socket

    spec = _as_spec(study)
    opts = RunOptions(
        trials=trials,
        storage=storage,
        data_dir=Path(data_dir),
        device=device,
        seed=seed,
        timeout=timeout,
        max_epochs=max_epochs,
        progress=progress,
        threads=threads,
        heartbeat=heartbeat,
        grace_period=grace_period,
        worker_tag=tag or f"{socket.gethostname()}-{os.getpid()}",
        allow_changed_spec=allow_changed_spec,
        artifacts=None if artifacts is None else Path(artifacts),
        verbose=verbose,
        log_file=None if log_file is None else Path(log_file),
    )
    return join_here(spec, opts)


def run_here(
    spec: StudySpec,
    opts: RunOptions,
    notify: Callable[[str], None] | None = None,
    dashboard: Alongside | None = None,
) -> RunSummary:
    """Run trials in this process until the study holds `opts.trials` finished ones.

    `notify` receives one-line notes from the sampler (e.g. a range stuck at an edge); by
    default they are written above the progress bar. `dashboard` starts serving once the
    storage exists.
    """
    target = require_total(opts.trials)
    spec = with_overrides(spec, opts)
    check_options(opts)
    objective = prepare(spec, opts)  # a bad device or data set fails before any file exists
    storage = connect(spec, opts)
    fail_stale(storage, spec.name)  # a dead worker's RUNNING trial: failed, and its retry queued
    if done(storage, spec.name, target):
        ensure_study(storage, spec, target, opts)
        return stored_summary(storage, spec.name, target, 0.0)
    if dashboard is not None:
        dashboard.start(opts.storage, opts.artifact_dir())
    try:
        return optimize(spec, opts, storage, target, notify or write_note, objective)
    finally:
        close(storage)


def join_here(
    spec: StudySpec, opts: RunOptions, notify: Callable[[str], None] | None = None
) -> RunSummary:
    """Join an existing study in this process and run trials until its recorded total."""
    spec = with_overrides(spec, opts)
    storage = connect(spec, opts, create=False)  # a worker joins; it never starts a database
    fail_stale(storage, spec.name)
    attrs = study_attrs(storage, spec.name)
    if not attrs and stored_direction(storage, spec.name) is None:
        raise StorageError(
            f"no study '{spec.name}' in {masked(opts.storage)}; create it first with "
            f"`hpsearch create --study {spec.cli_name} --trials N` (or `hpsearch run`)"
        )
    target = opts.trials or attrs.get(_keys.TARGET_TRIALS)
    if not target:
        raise UsageError(f"study '{spec.name}' has no recorded total; pass {arg('trials', 'N')}")
    try:
        if done(storage, spec.name, int(target)):  # a late worker: no torch, no data, no trial
            ensure_study(storage, spec, int(target), opts)
            return stored_summary(storage, spec.name, int(target), 0.0)
        objective = prepare(spec, opts)
        return optimize(spec, opts, storage, int(target), notify or write_note, objective)
    finally:
        close(storage)


def _run_workers(
    spec: StudySpec,
    opts: RunOptions,
    workers: int | None,
    gpus: str | None,
    per_gpu: int,
    dashboard: Alongside | None,
) -> RunSummary:
    """Check the options, then plan and launch the worker processes."""
    from hpsearch.study._workers import parse_gpus, plan_workers, run_parallel

    check_options(opts)  # before planning, which reads threads
    plans = plan_workers(workers, parse_gpus(gpus), per_gpu, cores(), opts.threads, opts.device)
    return run_parallel(spec, opts, plans, dashboard)


def default_workers(device: str, threads: int | None) -> tuple[int, str | None]:
    """Without --workers: one worker per visible GPU, else one single-thread worker per core.

    On CPU, two single-thread processes do 1.6-1.9x the training steps of one process with two
    threads (small models scale poorly across threads), so every core runs its own trial.
    """
    if device != "cpu":
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus and device in ("auto", "cuda"):
            return gpus, "all" if gpus > 1 else None
        if gpus:  # one named GPU, cuda:<i>
            return 1, None
    return max(1, cores() // (threads or 1)), None


def cores() -> int:
    """The CPU cores this process may use (a container's or taskset's limit, not the host's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _bind_dashboard(port: int) -> Alongside:
    """Hold the dashboard's port from the start, so a taken one fails before any trial."""
    from hpsearch.reporting._dashboard import Alongside

    return Alongside(port)


def _as_spec(study: StudyArg) -> StudySpec:
    """A spec from a study name, a path, or a spec (whose entries are checked like a file's)."""
    if not isinstance(study, StudySpec):
        return load_spec(os.fspath(study))
    if study.objective is not None and study.objective.entry is not None:
        from hpsearch.objectives._factory import check_entries

        check_entries(study)
    return study
