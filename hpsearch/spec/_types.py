"""What a study file means: the frozen, typed spec and the names and limits it draws on."""

from __future__ import annotations

import dataclasses
import hashlib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Optimizer = Literal["sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw"]
Init = Literal["he", "xavier"]
Schedule = Literal["constant", "cosine"]
Metric = Literal["valid_accuracy", "valid_loss"]
EarlyStopping = Literal["valid_loss", "valid_accuracy"]


@dataclass(frozen=True)
class DataSpec:
    """Which data set, and its fixed seeded split (MNIST: sizes; flowers: stratified fractions)."""

    dataset: Literal["mnist", "flowers", "imagefolder"] = "mnist"  # flowers: a folder preset
    split_seed: int = 0
    train_size: int = 48000
    valid_size: int = 12000
    folder: str = "flowers"
    image_size: int = 64
    valid_fraction: float = 0.15
    test_fraction: float = 0.15


@dataclass(frozen=True)
class ModelSpec:
    """Architecture knobs that are fixed for the whole study (MLP for MNIST, CNN for flowers)."""

    hidden: tuple[int, ...] = (500, 400, 300, 200, 100, 50)
    negative_slope: float = 0.01
    channels: tuple[int, ...] = (6, 12, 24)
    convs_per_block: int = 1  # 2: VGG-style conv-conv before each pool
    flip_average: bool = False  # evaluate each image and its mirror, average the logits
    residual: bool = False  # a skip path around each block's convs (1x1 projection on a change)
    stem_stride: int = 1  # stride of the first conv: 2 takes large images at half the cost


@dataclass(frozen=True)
class TrainingSpec:
    """Fixed training settings, and the value of every hyperparameter that is not searched."""

    max_epochs: int = 20
    patience: int = 3
    early_stopping: EarlyStopping = "valid_loss"  # the validation number that picks the best epoch
    metric: Metric = "valid_accuracy"
    optimizer: Optimizer = "adam"
    init: Init = "he"
    lr: float = 1e-3
    schedule: Schedule = "constant"  # cosine: lr decays to 0 over max_epochs
    momentum: float = 0.9
    weight_decay: float = 0.0
    l1: float = 0.0
    batch_size: int = 128
    batch_norm: bool = False
    dropout: float = 0.0
    noise_std: float = 0.0
    augment: bool = False
    mixup: float = 0.0  # Beta(a, a) weight for blending each batch with a shuffled copy; 0: off


# Searchable hyperparameters, in the order they are suggested (batch_norm before dropout,
# because dropout is only used without BatchNorm).
TUNABLE = (
    "optimizer",
    "init",
    "lr",
    "schedule",
    "momentum",
    "weight_decay",
    "l1",
    "batch_size",
    "batch_norm",
    "dropout",
    "noise_std",
    "augment",
    "mixup",
)
# What each data set's objective can use, and which [data] and [model] keys apply to it.
OBJECTIVE_PARAMS: dict[str, frozenset[str]] = {
    "mnist": frozenset(TUNABLE) - {"noise_std", "augment"},
    "flowers": frozenset(TUNABLE),
    "imagefolder": frozenset(TUNABLE),
}
DATA_KEYS: dict[str, frozenset[str]] = {
    "mnist": frozenset({"split_seed", "train_size", "valid_size"}),
    "flowers": frozenset({"split_seed", "folder", "image_size", "valid_fraction", "test_fraction"}),
    "imagefolder": frozenset(
        {"split_seed", "folder", "image_size", "valid_fraction", "test_fraction"}
    ),
}
MODEL_KEYS: dict[str, frozenset[str]] = {
    "mnist": frozenset({"hidden", "negative_slope"}),
    "flowers": frozenset(
        {"channels", "convs_per_block", "flip_average", "residual", "stem_stride"}
    ),
    "imagefolder": frozenset(
        {"channels", "convs_per_block", "flip_average", "residual", "stem_stride"}
    ),
}

IMAGE_FOLDERS = frozenset({"flowers", "imagefolder"})  # data sets read from class sub-folders
# name -> (lowest allowed, highest allowed, is the high end open?)
BOUNDS: dict[str, tuple[float, float, bool]] = {
    "lr": (1e-12, 10.0, False),
    "momentum": (0.0, 1.0, True),
    "weight_decay": (0.0, 1.0, False),
    "l1": (0.0, 1.0, False),
    "batch_size": (1, 1 << 20, False),
    "dropout": (0.0, 1.0, True),
    "noise_std": (0.0, 10.0, False),
    "mixup": (0.0, 100.0, False),
}


Grow = Literal["none", "low", "high", "both"]
# A conditional parameter's `when`: (parameter, the values it must have), all of which must hold.
When = tuple[tuple[str, tuple[Any, ...]], ...]
SCALAR = (str, int, float, bool)  # what a choice can be (Optuna's categorical values)


@dataclass(frozen=True)
class FloatRange:
    """A float searched uniformly (optionally stepped) or log-uniformly.

    `grow` lets the narrowing sampler move past low/high when the best trials sit at that edge,
    up to the hyperparameter's hard limits.
    """

    low: float
    high: float
    log: bool = False
    step: float | None = None
    grow: Grow = "none"
    when: When = ()


@dataclass(frozen=True)
class IntRange:
    """An integer searched uniformly or log-uniformly (same `grow` as FloatRange)."""

    low: int
    high: int
    log: bool = False
    step: int = 1
    grow: Grow = "none"
    when: When = ()


@dataclass(frozen=True)
class Choice:
    """A categorical hyperparameter: one of a fixed list of values."""

    choices: tuple[Any, ...]
    when: When = ()


ParamRange = FloatRange | IntRange | Choice


def is_active(rng: ParamRange, values: Mapping[str, Any]) -> bool:
    """Whether a parameter is used, given the values suggested before it (see `when`)."""
    return all(name in values and values[name] in allowed for name, allowed in rng.when)


@dataclass(frozen=True)
class SamplerSpec:
    """Which sampler proposes trials; the narrowing keys apply to kind = "narrowing" only."""

    kind: Literal["random", "tpe", "narrowing"] = "tpe"
    n_startup_trials: int = 10
    trials_per_round: int = 10
    rounds: int = 0
    keep: float = 0.2
    min_keep: int = 5
    margin: float = 0.1
    min_width: float = 0.05
    min_complete: int = 3
    drop_after: int = 3  # a choice is dropped only after this many trials of it in the new box
    wait_timeout: float = 600.0


@dataclass(frozen=True)
class PrunerSpec:
    """Which Optuna pruner stops trials that fall behind, and its parameters."""

    kind: Literal["median", "successive_halving", "hyperband", "threshold", "none"] = "median"
    n_startup_trials: int = 5
    n_warmup_steps: int = 1
    min_resource: int = 1
    reduction_factor: int = 3
    lower: float | None = None
    upper: float | None = None


PRUNER_KEYS: dict[str, frozenset[str]] = {
    "median": frozenset({"n_startup_trials", "n_warmup_steps"}),
    "successive_halving": frozenset({"min_resource", "reduction_factor"}),
    "hyperband": frozenset({"min_resource", "reduction_factor"}),
    "threshold": frozenset({"lower", "upper", "n_warmup_steps"}),
    "none": frozenset(),
}
SAMPLER_KEYS: dict[str, frozenset[str]] = {
    "random": frozenset(),
    "tpe": frozenset({"n_startup_trials"}),
    "narrowing": frozenset(
        {
            "trials_per_round",
            "rounds",
            "keep",
            "min_keep",
            "margin",
            "min_width",
            "min_complete",
            "drop_after",
            "wait_timeout",
        }
    ),
}


@dataclass(frozen=True)
class ObjectiveSpec:
    """A user's objective: the function called for each trial, and what it reports."""

    metric: str  # the name the function reports with ctx.report and returns
    direction: Literal["maximize", "minimize"]
    entry: str | None = None  # "file.py:function" beside the study file, or "module:function"
    max_epochs: int = 20
    test: str | None = None  # "file.py:function" that evaluates the selected trial once
    config: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))


@dataclass(frozen=True)
class StudySpec:
    """Everything one study file says; frozen so a running study cannot drift from its file.

    Made by :func:`load_spec`; pass it to :func:`hpsearch.run` and friends in place of a name.

    Args:
        name: The study's name in storage (the file's stem unless it sets ``name``).
        path: Where the study file was read from.
        text: The file's full text, recorded in the study's manifest.
        description: One line shown by `hpsearch studies`.
        seed: The study seed; each trial's seed derives from it and the trial number.
        keep_weights: How many top trials keep their best-epoch weights.
        data: The data set and its fixed, seeded split.
        model: Architecture settings fixed for the whole study.
        training: Training settings, and the value of every hyperparameter not searched.
        search: The searched hyperparameters' ranges, in suggestion order.
        sampler: Which sampler proposes trials, and its settings.
        pruner: Which pruner stops trials that fall behind, and its settings.
        objective: A user's objective function and what it reports; None for the built-in
            models, which the ``[data]``, ``[model]`` and ``[training]`` tables describe.
        max_failures: Stop the run after this many failed trials in a row.

    Example:
        >>> import dataclasses, hpsearch
        >>> spec = hpsearch.load_spec("mnist-reg")
        >>> shorter = dataclasses.replace(
        ...     spec, training=dataclasses.replace(spec.training, max_epochs=5)
        ... )
        >>> shorter.direction
        'maximize'
    """

    name: str
    path: Path
    text: str
    description: str = ""
    seed: int = 0
    keep_weights: int = 5
    data: DataSpec = field(default_factory=DataSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    search: Mapping[str, ParamRange] = field(default_factory=lambda: types.MappingProxyType({}))
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    objective: ObjectiveSpec | None = None
    max_failures: int = 5

    @property
    def metric(self) -> str:
        """The name of the value each trial reports per epoch and returns."""
        return self.objective.metric if self.objective else self.training.metric

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        """The objective's direction; for the built-in models accuracy up, loss down."""
        if self.objective is not None:
            return self.objective.direction
        return "maximize" if self.training.metric == "valid_accuracy" else "minimize"

    @property
    def max_epochs(self) -> int:
        """The most epochs a trial runs (the pruner's resource)."""
        return self.objective.max_epochs if self.objective else self.training.max_epochs

    @property
    def cli_name(self) -> str:
        """What to pass as --study in a suggested command: the name if shipped, else the path."""
        from hpsearch.spec._files import list_study_files

        shipped = self.path.resolve() in {p.resolve() for p in list_study_files()}
        return self.name if shipped and self.path.stem == self.name else str(self.path)

    @property
    def text_hash(self) -> str:
        """A short fingerprint of the file's text, for manifests and change detection."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def with_run_settings(spec: StudySpec, seed: int | None, max_epochs: int | None) -> StudySpec:
    """The spec with a run's --seed and --max-epochs (None keeps the file's value)."""
    if seed is not None:
        spec = dataclasses.replace(spec, seed=seed)
    if max_epochs is not None and spec.objective is not None:
        objective = dataclasses.replace(spec.objective, max_epochs=max_epochs)
        spec = dataclasses.replace(spec, objective=objective)
    elif max_epochs is not None:
        training = dataclasses.replace(spec.training, max_epochs=max_epochs)
        spec = dataclasses.replace(spec, training=training)
    return spec
