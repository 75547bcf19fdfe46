"""One trial of any objective: suggest, seed, call the function, and store what happened.

The built-in models and a user's function go through the same steps. A function that raises
or returns a value that is not a finite number leaves a FAIL trial with the error on it; the
study goes on (see `max_failures`).
"""

from __future__ import annotations

import math
import socket
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import _keys
from hpsearch.errors import HPSearchError, short
from hpsearch.objectives._context import TrialContext, as_number
from hpsearch.spec import Choice, IntRange, ParamRange, StudySpec, distribution_bounds, is_active
from hpsearch.storages._retry import is_outage

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore

ObjectiveFn = Callable[[dict[str, Any], TrialContext], float]
ERROR_CHARS = 500  # of an exception's message kept on the trial


class TrialFailed(HPSearchError):
    """The objective raised or returned no number: this trial failed, the study goes on."""


def trial_seed(study_seed: int, number: int) -> int:
    """A per-trial seed from the study seed and trial number, so reruns are reproducible."""
    return (study_seed * 1_000_003 + number) % (2**31 - 1)


def suggest_params(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Suggest every searched parameter whose `when` holds, in the study file's order."""
    values: dict[str, Any] = {}
    for name, rng in spec.search.items():
        if is_active(rng, values):
            values[name] = suggest_one(trial, name, rng)
    return values


def suggest_one(trial: optuna.Trial, name: str, rng: ParamRange) -> Any:
    """One define-by-run suggestion inside the study file's range."""
    if isinstance(rng, Choice):
        return trial.suggest_categorical(name, list(rng.choices))
    low, high = distribution_bounds(name, rng)  # wider than low/high only where it may grow
    if isinstance(rng, IntRange):
        return trial.suggest_int(name, int(low), int(high), step=rng.step, log=rng.log)
    return trial.suggest_float(name, low, high, step=rng.step, log=rng.log)


def make_objective(
    spec: StudySpec,
    function: ObjectiveFn,
    data_dir: Path,
    device: torch.device,
    store: ArtifactStore | None = None,
    worker: str = "",
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective that runs `function` for each trial of the study."""

    def objective(trial: optuna.Trial) -> float:
        return run_trial(trial, spec, function, data_dir, device, store, worker=worker)

    return objective


def run_trial(
    trial: optuna.Trial,
    spec: StudySpec,
    function: ObjectiveFn,
    data_dir: Path,
    device: torch.device,
    store: ArtifactStore | None = None,
    params: Mapping[str, Any] | None = None,
    worker: str = "",
) -> float:
    """Suggest (or take `params`), seed, call the function, and record the trial's attributes."""
    import optuna

    chosen = dict(params) if params is not None else suggest_params(trial, spec)
    seed = trial_seed(spec.seed, trial.number)
    _seed_everything(seed, device)
    _record_setting(trial, seed, device, worker)
    ctx = TrialContext(trial, spec, device, seed, data_dir, store)
    started = time.perf_counter()
    try:
        value = function(chosen, ctx)
    except optuna.TrialPruned as exc:
        traceback.clear_frames(exc.__traceback__)  # frees the model (GPU memory) now
        _record_end(trial, ctx, started)
        raise
    except Exception as exc:
        if is_outage(exc):  # the database, not the function: the optimize loop's to handle
            raise
        _record_end(trial, ctx, started)
        raise _failed(trial, exc) from None
    _record_end(trial, ctx, started)
    return _checked_value(trial, value, spec.metric)


def _seed_everything(seed: int, device: torch.device) -> None:
    """torch, numpy and random, so a trial reruns exactly; cuDNN's repeatable algorithms."""
    import random

    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    if device.type == "cuda":  # cuDNN's fastest convolution backward passes are not repeatable
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _record_setting(trial: optuna.Trial, seed: int, device: torch.device, worker: str) -> None:
    """Where and how the trial ran: what rerun needs to reproduce it, and `status` shows."""
    import os

    import torch

    trial.set_user_attr(_keys.SEED, seed)
    trial.set_user_attr(_keys.HOST, socket.gethostname())
    trial.set_user_attr(_keys.WORKER, worker or f"pid {os.getpid()}")
    trial.set_user_attr(_keys.DEVICE, str(device))
    trial.set_user_attr(_keys.THREADS, torch.get_num_threads())


def _record_end(trial: optuna.Trial, ctx: TrialContext, started: float) -> None:
    """How many epochs the trial reported, its best one, and how long it took."""
    trial.set_user_attr(_keys.EPOCHS, len(ctx.history))
    trial.set_user_attr(_keys.SECONDS, round(time.perf_counter() - started, 4))
    best = best_epoch(ctx.history, ctx.metric, ctx.spec.direction == "maximize")
    if best is not None and _keys.BEST_EPOCH not in trial.user_attrs:  # hpsearch.fit sets its own
        trial.set_user_attr(_keys.BEST_EPOCH, best)


def best_epoch(history: list[dict[str, float]], metric: str, maximize: bool) -> int | None:
    """The first epoch with the best reported metric (None before any finite report)."""
    finite = [row for row in history if math.isfinite(row[metric])]
    if not finite:
        return None
    sign = 1 if maximize else -1
    return int(max(finite, key=lambda row: (sign * row[metric], -row["epoch"]))["epoch"])


def _failed(trial: optuna.Trial, exc: Exception) -> TrialFailed:
    """Store the error on the trial, print its traceback, and free what its frames hold.

    hpsearch's own errors (a ctx.report without the metric, say) already name the call and the
    fix: they print as their one line.
    """
    message = f"{type(exc).__name__}: {exc}".strip()[:ERROR_CHARS]
    trial.set_user_attr(_keys.ERROR, message)
    text = "" if isinstance(exc, HPSearchError) else "".join(traceback.format_exception(exc))
    traceback.clear_frames(exc.__traceback__)
    _log(f"trial #{trial.number} failed: {message}\n{text}".rstrip())
    return TrialFailed(f"trial #{trial.number} failed: {message}")


def _checked_value(trial: optuna.Trial, value: Any, metric: str) -> float:
    """The function's return value as a float; anything else ('0.5', True) fails the trial."""
    number = as_number(value)
    if number is not None and math.isfinite(number):
        return number
    message = f"ValueError: the objective returned {short(value)}, not a finite number"
    if isinstance(value, Mapping):
        message += f"; return the metric itself, e.g. return result[{metric!r}]"
    trial.set_user_attr(_keys.ERROR, message)
    _log(f"trial #{trial.number} failed: {message}")
    raise TrialFailed(f"trial #{trial.number} failed: {message}")


def _log(text: str) -> None:
    """A failure on standard error, above the progress bar."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)
