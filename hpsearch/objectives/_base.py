"""What every objective shares: suggesting hyperparameters, seeding, reporting and pruning."""

from __future__ import annotations

import dataclasses
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from hpsearch import _keys
from hpsearch.objectives._train import EpochStats, FitConfig, fit
from hpsearch.spec import (
    Choice,
    DataSpec,
    IntRange,
    ParamRange,
    StudySpec,
    TrainingSpec,
    distribution_bounds,
)
from hpsearch.study import _interrupts as interrupts

if TYPE_CHECKING:
    import torch
    from optuna.artifacts._protocol import ArtifactStore
    from torch import nn

    from hpsearch.objectives._data import Splits


def trial_seed(study_seed: int, number: int) -> int:
    """A per-trial seed from the study seed and trial number, so reruns are reproducible."""
    return (study_seed * 1_000_003 + number) % (2**31 - 1)


def suggest(trial: optuna.Trial, spec: StudySpec, dropout_needs_no_bn: bool = True) -> TrainingSpec:
    """Suggest every searched hyperparameter; the rest keep the study file's training values.

    With `dropout_needs_no_bn` (the MNIST MLP), dropout is conditional: it is only suggested,
    and only used, when BatchNorm is off.
    """
    values: dict[str, Any] = {}
    for name, rng in spec.search.items():
        bn = values.get("batch_norm", spec.training.batch_norm)
        if name == "dropout" and dropout_needs_no_bn and bn:
            continue
        values[name] = suggest_one(trial, name, rng)
    return dataclasses.replace(spec.training, **values)


def suggest_one(trial: optuna.Trial, name: str, rng: ParamRange) -> Any:
    """One define-by-run suggestion inside the study file's range."""
    if isinstance(rng, Choice):
        return trial.suggest_categorical(name, list(rng.choices))
    low, high = distribution_bounds(name, rng)  # wider than low/high only where it may grow
    if isinstance(rng, IntRange):
        return trial.suggest_int(name, int(low), int(high), step=rng.step, log=rng.log)
    return trial.suggest_float(name, low, high, step=rng.step, log=rng.log)


class EpochReporter:
    """Reports each epoch to Optuna, stores the history on the trial, and prunes when told."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric
        self.history: list[dict[str, float]] = []
        self.started = time.perf_counter()

    def __call__(self, stats: EpochStats) -> None:
        """Called by the training loop after every epoch."""
        interrupts.raise_if_requested()  # a Ctrl-C Python dropped mid-epoch stops the trial here
        self.history.append(stats.as_dict())
        self.trial.set_user_attr(_keys.HISTORY, self.history)
        self.trial.report(getattr(stats, self.metric), stats.epoch)
        if self.trial.should_prune():
            self.finish()
            self.trial.set_user_attr(_keys.PRUNED_AT_EPOCH, stats.epoch)
            raise optuna.TrialPruned(f"pruned at epoch {stats.epoch}")

    def finish(self) -> None:
        """Record how many epochs ran and how long the trial took."""
        self.trial.set_user_attr(_keys.EPOCHS, len(self.history))
        self.trial.set_user_attr(_keys.SECONDS, round(time.perf_counter() - self.started, 4))


@dataclass(frozen=True)
class ObjectiveKind:
    """What differs between data sets: the data, the model, augmentation, conditional dropout."""

    load: Callable[[DataSpec, Path, torch.device], Splits]
    load_test: Callable[[DataSpec, Path, torch.device], tuple[torch.Tensor, torch.Tensor]]
    build: Callable[[StudySpec, TrainingSpec, int], nn.Module]
    augment: Callable[[TrainingSpec], Callable[[torch.Tensor], torch.Tensor] | None]
    dropout_needs_no_bn: bool


def make_objective(
    spec: StudySpec,
    kind: ObjectiveKind,
    data_dir: Path,
    device: torch.device,
    store: ArtifactStore | None = None,
) -> Callable[[optuna.Trial], float]:
    """Load the data once, then return the define-by-run objective for this study.

    With an artifact store, each completed trial uploads its best epoch's weights.
    """
    from hpsearch.storages._artifacts import upload_weights

    splits = kind.load(spec.data, data_dir, device)

    def objective(trial: optuna.Trial) -> float:
        try:
            value, model = train_model(trial, spec, kind, splits, device)
        except BaseException as exc:
            # Optuna keeps a pruned or failed trial's exception in a reference cycle; the
            # traceback's frames hold the model, optimizer and best weights (GPU memory) until a
            # garbage collection. Clearing them frees all that now, without a collection.
            traceback.clear_frames(exc.__traceback__)
            raise
        if store is not None:
            upload_weights(store, trial, model)
        return value

    return objective


def train_model(
    trial: optuna.Trial,
    spec: StudySpec,
    kind: ObjectiveKind,
    splits: Splits,
    device: torch.device,
) -> tuple[float, nn.Module]:
    """Suggest, seed, build and train one trial; the model comes back at its best epoch."""
    import torch

    hp = suggest(trial, spec, kind.dropout_needs_no_bn)
    seed = trial_seed(spec.seed, trial.number)
    torch.manual_seed(seed)
    if device.type == "cuda":  # cuDNN's fastest convolution backward passes are not repeatable
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    model = kind.build(spec, hp, len(splits.classes)).to(device)
    value = train_trial(trial, spec, hp, model, splits, seed, device, kind.augment(hp))
    return value, model


def train_trial(
    trial: optuna.Trial,
    spec: StudySpec,
    hp: TrainingSpec,
    model: nn.Module,
    splits: Splits,
    seed: int,
    device: torch.device,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Train a built model for one trial and return its restored best epoch's metric."""
    import torch

    from hpsearch.objectives._train import make_optimizer

    trial.set_user_attr(_keys.SEED, seed)
    trial.set_user_attr(_keys.HOST, socket.gethostname())
    trial.set_user_attr(_keys.DEVICE, str(device))
    trial.set_user_attr(_keys.THREADS, torch.get_num_threads())
    optimizer = make_optimizer(
        hp.optimizer, model.parameters(), hp.lr, hp.weight_decay, hp.momentum
    )
    cfg = FitConfig(
        hp.max_epochs, hp.batch_size, hp.patience, seed, hp.l1, hp.schedule, mixup=hp.mixup
    )
    reporter = EpochReporter(trial, spec.training.metric)
    result = fit(model, optimizer, splits, cfg, reporter, augment)
    reporter.finish()
    trial.set_user_attr(_keys.BEST_EPOCH, result.best.epoch)
    return float(getattr(result.best, spec.training.metric))
