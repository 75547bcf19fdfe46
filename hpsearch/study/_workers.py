"""Several workers on one storage: `hpsearch run --workers K [--gpus ...]`, and its default.

Worker 0 on CPU is the launching process itself; every other worker is a separate `hpsearch
worker` process (not a thread) that loads the data once and runs trials until the study's total
is reached. Optuna's storage is the only thing they share. A worker starts a trial only while
finished plus running trials fall short of the total, counted in the new trial's own transaction
under the study's write lock (TrackingRDBStorage), so the total is exact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from hpsearch import _keys
from hpsearch.errors import INTERRUPTED_EXIT, HPSearchError, UsageError, arg
from hpsearch.spec import StudySpec
from hpsearch.study._connect import close, connect
from hpsearch.study._create import ensure_study
from hpsearch.study._optimize import Objective, fail_stale, optimize, prepare, write_note
from hpsearch.study._options import RunOptions, require_total, with_overrides
from hpsearch.study._summary import RunSummary, done, stored_summary

if TYPE_CHECKING:
    import optuna

    from hpsearch.reporting._dashboard import Alongside
    from hpsearch.storages._tracking import TrackingRDBStorage
    from hpsearch.study._progress import TrialProgress

POLL_S = 1.0
EXIT_POLL_S = 0.1
STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class WorkerPlan:
    """Where one worker runs: its device, its CPU threads, and its visible GPU."""

    index: int
    device: str
    threads: int
    gpu: int | None = None


def parse_gpus(value: str | None) -> list[int] | None:
    """'0,1,3' or 'all' to GPU indices; None when no GPUs were asked for."""
    if value is None:
        return None
    if value == "all":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(
                f"{arg('gpus', 'all')} but no GPU is visible; drop {arg('gpus')} to run on the CPU"
            )
        return list(range(count))
    try:
        gpus = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"{arg('gpus')} must be 'all' or indices like 0,1 but got '{value}'"
        ) from None
    if not gpus or min(gpus) < 0:
        raise UsageError(f"{arg('gpus')} must be 'all' or indices like 0,1 but got '{value}'")
    return gpus


def plan_workers(
    workers: int | None,
    gpus: list[int] | None,
    per_gpu: int,
    cpus: int,
    threads: int | None = None,
    device: str = "auto",
) -> list[WorkerPlan]:
    """Worker i gets GPU gpus[i // per_gpu] (else `device`) and `threads` or a core share."""
    if per_gpu < 1:
        raise UsageError(f"{arg('workers_per_gpu')} must be ≥ 1 but got {per_gpu}")
    if not gpus and per_gpu != 1:
        raise UsageError(
            f"{arg('workers_per_gpu', per_gpu)} needs {arg('gpus')}; add {arg('gpus', 'all')} "
            "or drop it"
        )
    if gpus and device not in ("auto", "cuda"):
        raise UsageError(
            f"{arg('gpus')} runs the workers on GPUs but {arg('device')} is {device}; drop one"
        )
    if gpus:
        slots = [g for g in gpus for _ in range(per_gpu)]
        count = workers or len(slots)
        if count > len(slots):
            raise UsageError(
                f"{arg('workers', count)} but only {len(slots)} GPU slots ({len(gpus)} GPUs x "
                f"{per_gpu} per GPU); raise {arg('workers_per_gpu')} or lower {arg('workers')}"
            )
        share = threads or max(1, cpus // count)
        return [WorkerPlan(i, "cuda", share, slots[i]) for i in range(count)]
    count = 1 if workers is None else workers
    if count < 1:
        raise UsageError(f"{arg('workers')} must be ≥ 1 but got {count}")
    return [WorkerPlan(i, device, threads or max(1, cpus // count)) for i in range(count)]


def check_devices(plans: list[WorkerPlan]) -> None:
    """Every planned device exists here, so a missing GPU fails once, before any worker starts."""
    import torch

    from hpsearch.objectives._train import resolve_device

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    for plan in plans:
        if plan.gpu is None:
            resolve_device(plan.device)
        elif visible == 0:
            raise UsageError(
                f"{arg('gpus')} was given but no GPU is visible; drop {arg('gpus')} to use the CPU"
            )
        elif plan.gpu >= visible:
            raise UsageError(
                f"{arg('gpus')} asks for GPU {plan.gpu} but only GPUs 0-{visible - 1} are visible; "
                f"use {arg('gpus', 'all')}"
            )


def worker_command(spec: StudySpec, opts: RunOptions, plan: WorkerPlan, target: int) -> list[str]:
    """The `hpsearch worker` command line for one worker (the storage URL goes in its env)."""
    cmd = [sys.executable, "-m", "hpsearch", "worker", "--study", str(spec.path)]
    cmd += ["--trials", str(target), "--data-dir", str(opts.data_dir), "--device", plan.device]
    cmd += ["--threads", str(plan.threads), "--tag", f"w{plan.index}", "--no-progress"]
    cmd += ["--launched"]  # the run prints the interrupt and the summary, once
    cmd += ["--verbose"] if opts.verbose else []
    cmd += ["--log-file", str(opts.log_file.resolve())] if opts.log_file else []
    cmd += ["--artifacts", str(opts.artifact_dir().resolve())]
    cmd += ["--heartbeat", str(opts.heartbeat), "--grace-period", str(opts.grace_period)]
    if opts.seed is not None:
        cmd += ["--seed", str(opts.seed)]
    if opts.max_epochs is not None:
        cmd += ["--max-epochs", str(opts.max_epochs)]
    if opts.timeout is not None:  # counted from each worker's start, a second or two late
        cmd += ["--timeout", repr(opts.timeout)]
    return cmd


def run_parallel(
    spec: StudySpec,
    opts: RunOptions,
    plans: list[WorkerPlan],
    dashboard: Alongside | None = None,
) -> RunSummary:
    """Start the workers, show progress from storage, and stop them all cleanly on Ctrl-C.

    On CPU this process is worker 0 itself: it has imported torch and loaded the data for its
    checks anyway, so its first trial starts as soon as one process's would, and one process
    fewer holds torch. GPU workers are all separate processes, each seeing only its own GPU.
    """
    from hpsearch.study._progress import TrialProgress

    target = require_total(opts.trials)
    spec = with_overrides(spec, opts)
    own = _check(spec, opts, plans)  # bad input fails here, once, before any write
    storage = connect(spec, opts)
    ensure_study(storage, spec, target, opts)
    started = time.perf_counter()
    fail_stale(storage, spec.name)
    if done(storage, spec.name, target):
        return stored_summary(storage, spec.name, target, 0.0)  # nothing to do: start no worker
    if dashboard is not None:
        dashboard.start(opts.storage, opts.artifact_dir())
    others = plans[1:] if own is not None else plans
    tagged = {f"w{plan.index}": _spawn(spec, opts, plan) for plan in others}
    procs = list(tagged.values())
    study = _load(storage, spec.name)
    progress = TrialProgress(study, target, enabled=opts.progress)
    idle: list[subprocess.Popen[bytes]] = []
    try:
        if own is not None:
            with _polling(progress, procs):
                optimize(spec, own.opts, storage, target, write_note, own.objective)
            idle = _end_idle(storage, spec.name, target, tagged)
        _watch(progress, procs)
    except BaseException:
        _stop(procs)  # Ctrl-C, or this process's trials failed: the others stop too
        raise
    finally:
        progress.close()
    failed = [(tag, p.returncode) for tag, p in tagged.items() if p.returncode and p not in idle]
    if failed and all(code == INTERRUPTED_EXIT for _, code in failed):
        raise KeyboardInterrupt  # a worker's Ctrl-C: nothing to fix, the run was interrupted
    if failed:
        codes = ", ".join(f"worker {tag} exited with {code}" for tag, code in failed)
        raise HPSearchError(f"{codes}; see its message above, fix it and re-run to resume")
    summary = stored_summary(storage, spec.name, target, time.perf_counter() - started)
    close(storage)
    return summary


@dataclass(frozen=True)
class _Own:
    """Worker 0 when this process runs it: its options and its prepared objective."""

    opts: RunOptions
    objective: Objective


def _check(spec: StudySpec, opts: RunOptions, plans: list[WorkerPlan]) -> _Own | None:
    """Entry, devices, artifact folder and data, checked once here; worker 0 on a CPU plan."""
    from hpsearch.objectives._factory import check_data, objective_function
    from hpsearch.objectives._train import resolve_device
    from hpsearch.storages._artifacts import check_writable

    check_devices(plans)
    first = plans[0]
    if first.gpu is None:  # this process's threads, device and data
        own = replace(
            opts,
            device=first.device,
            threads=first.threads,
            worker_tag=f"w{first.index}",
            progress=False,
        )
        return _Own(own, prepare(spec, own))
    objective_function(spec)
    check_writable(opts.artifact_dir())
    check_data(spec, opts.data_dir, resolve_device("cpu"))
    return None


def _spawn(spec: StudySpec, opts: RunOptions, plan: WorkerPlan) -> subprocess.Popen[bytes]:
    """One worker process; the storage URL travels in its environment, not its argv."""
    env = dict(os.environ, HPSEARCH_STORAGE=opts.storage)
    if plan.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible_gpu(plan.gpu, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return subprocess.Popen(worker_command(spec, opts, plan, opts.trials or 0), env=env)


def visible_gpu(index: int, parent: str | None) -> str:
    """The CUDA_VISIBLE_DEVICES entry for GPU `index` as this process numbers it.

    --gpus indices count the GPUs this process sees; when it already sees a subset (a scheduler
    set CUDA_VISIBLE_DEVICES=2,3), index 0 is physical GPU 2 (or a UUID), not GPU 0.
    """
    ids = [part.strip() for part in (parent or "").split(",") if part.strip()]
    return ids[index] if index < len(ids) else str(index)


def _load(storage: TrackingRDBStorage, name: str) -> optuna.Study:
    """The stored study, for the progress line (no sampler: this handle runs no trial)."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage)


def _watch(
    progress: TrialProgress,
    procs: list[subprocess.Popen[bytes]],
    stop: threading.Event | None = None,
) -> None:
    """Poll storage for the progress line until every worker has exited (or `stop` is set)."""
    shown = 0.0
    while True:
        alive = sum(p.poll() is None for p in procs) + (stop is not None)
        over = stop.is_set() if stop is not None else alive == 0
        if over or time.monotonic() - shown >= POLL_S:  # storage read once a second
            _refresh(progress, f"workers={alive} ", quiet=stop is not None)
            shown = time.monotonic()
        if over:
            return
        time.sleep(EXIT_POLL_S)  # a worker's exit is noticed within a tenth of a second


def _refresh(progress: TrialProgress, prefix: str, quiet: bool) -> None:
    """Redraw the line; from the polling thread a failed read waits for the next poll.

    The run's own trials meet the same storage errors in the main thread and report them; a
    thread's exception would only print a traceback over the progress line.
    """
    try:
        progress.refresh(prefix)
    except Exception:
        if not quiet:
            raise


@contextmanager
def _polling(progress: TrialProgress, procs: list[subprocess.Popen[bytes]]) -> Iterator[None]:
    """Keep the progress line current from a thread while this process runs its own trials."""
    stop = threading.Event()
    thread = threading.Thread(target=_watch, args=(progress, procs, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _end_idle(
    storage: TrackingRDBStorage,
    name: str,
    target: int,
    tagged: dict[str, subprocess.Popen[bytes]],
) -> list[subprocess.Popen[bytes]]:
    """Stop the workers that never started a trial once the study is settled.

    At the total with nothing running or queued, the exact total lets no worker start a trial,
    so one still starting up would only find the study done; ending it now saves the run's exit
    its start-up (about a second). It holds no trial, and its storage writes are single
    transactions. A worker that ran trials finishes its own bookkeeping and exits by itself.
    """
    from optuna.trial import TrialState

    if not done(storage, name, target):
        return []
    trials = storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False)
    if any(t.state == TrialState.RUNNING for t in trials):
        return []
    busy = {t.user_attrs.get(_keys.WORKER) for t in trials}
    idle = [p for tag, p in tagged.items() if tag not in busy and p.poll() is None]
    for proc in idle:
        proc.terminate()
    return idle


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Ctrl-C or a failure here: each worker marks its cut-off trial failed and exits.

    SIGTERM, not SIGINT: a worker still starting up (it holds no trial yet) ends quietly instead
    of printing a KeyboardInterrupt from its imports; one running trials handles it as Ctrl-C.
    Stragglers are killed.
    """
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
