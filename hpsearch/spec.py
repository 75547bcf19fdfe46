"""Study files (TOML) to one frozen, typed spec: unknown keys and bad ranges fail on load."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from hpsearch._paths import studies_dir
from hpsearch.errors import SpecError

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


# ---------------------------------------------------------------- finding study files


def list_study_files() -> list[Path]:
    """Every shipped study file, sorted by name: in studies/, or in an example's own folder."""
    root = studies_dir()
    return sorted([*root.glob("*.toml"), *root.glob("*/*.toml")], key=lambda p: p.stem)


def resolve_study(name_or_path: str) -> Path:
    """A study name from studies/, or a path to a .toml file, to an existing file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or "/" in name_or_path:
        if candidate.is_file():
            return candidate
        if candidate.is_dir():
            raise SpecError(f"study file '{name_or_path}' is a folder; pass the .toml file in it")
        raise SpecError(f"study file '{name_or_path}' does not exist; check the path")
    shipped = [p for p in list_study_files() if p.stem == name_or_path]
    if shipped:
        return shipped[0]
    known = ", ".join(p.stem for p in list_study_files()) or "(none)"
    raise SpecError(
        f"unknown study '{name_or_path}'; known studies: {known} (or pass a path to a .toml file)"
    )


def load_spec(name_or_path: str) -> StudySpec:
    """Read, parse and validate a study file named by study name or path.

    Unknown keys, wrong types and out-of-range values raise `SpecError` with the file and the
    key named, e.g. ``search.dropout.high must be < 1 but got 1.5``.

    Args:
        name_or_path: A shipped study's name (see `hpsearch studies`), or a path to a ``.toml``
            study file.

    Returns:
        The frozen spec: data, model, training settings, search ranges, sampler and pruner.

    Example:
        >>> import hpsearch
        >>> spec = hpsearch.load_spec("mnist-narrow")
        >>> spec.sampler.kind, sorted(spec.search)[:2]
        ('narrowing', ['batch_norm', 'batch_size'])
    """
    spec = read_spec(name_or_path)
    if spec.objective is not None:
        from hpsearch.objectives._factory import check_entries

        check_entries(spec)  # a bad entry fails now, before anything is created
    return spec


def read_spec(name_or_path: str) -> StudySpec:
    """Read, parse and validate a study file, without importing its objective's code."""
    path = resolve_study(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 TOML"
        ) from None
    except OSError as exc:
        raise SpecError(
            f"{path}: cannot read the study file ({exc.strerror}); check its permissions"
        ) from None
    return parse_spec(text, path)


def parse_spec(text: str, path: Path) -> StudySpec:
    """Parse TOML text into a validated spec; every error names the file and the key."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: malformed TOML: {exc}; fix the syntax on that line") from exc
    try:
        return _spec_from_table(table, path, text)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None


def _spec_from_table(table: dict[str, Any], path: Path, text: str) -> StudySpec:
    """Build the spec section by section, then check what spans sections."""
    table = dict(table)
    search_table = table.pop("search", {})
    table.setdefault("name", path.stem)
    for key in _INTERNAL & table.keys():
        raise SpecError(f"unknown key '{key}'; it is set by hpsearch, remove it")
    config = _objective_config(table)
    spec: StudySpec = _build(StudySpec, {**table, "path": path, "text": text}, "")
    if spec.objective is not None:
        spec = dataclasses.replace(spec, objective=dataclasses.replace(spec.objective, **config))
    search = _parse_search(search_table, free=spec.objective is not None)
    spec = dataclasses.replace(spec, search=types.MappingProxyType(search))
    _check_spec(spec)
    _check_written_keys(table, spec)
    return spec


def _objective_config(table: dict[str, Any]) -> dict[str, Any]:
    """Take [objective.config] out of the table: a free-form table, passed to the function as is."""
    objective = table.get("objective")
    if not isinstance(objective, dict) or "config" not in objective:
        return {}
    objective = dict(objective)
    config = objective.pop("config")
    if not isinstance(config, dict):
        raise SpecError(f"objective.config must be a table but got {config!r}")
    table["objective"] = objective
    return {"config": types.MappingProxyType(config)}


def _check_written_keys(table: dict[str, Any], spec: StudySpec) -> None:
    """A key written for another kind is an error even at its default value (a likely typo)."""
    if spec.data.dataset == "imagefolder" and "folder" not in table.get("data", {}):
        raise SpecError(
            'data.folder is required with dataset = "imagefolder": the folder under --data-dir '
            "(or an absolute path) that holds one sub-folder of images per class"
        )
    if spec.objective is not None:
        for section in ("data", "model", "training"):
            if section in table:
                raise SpecError(
                    f"[{section}] is for the built-in models, not a study with [objective]; "
                    "put your own settings in [objective.config]"
                )
    kinds = {
        "sampler": (SAMPLER_KEYS, spec.sampler.kind),
        "pruner": (PRUNER_KEYS, spec.pruner.kind),
        "data": (DATA_KEYS, spec.data.dataset),
        "model": (MODEL_KEYS, spec.data.dataset),
    }
    for section, (allowed, kind) in kinds.items():
        written = table.get(section, {}).keys() - {"kind", "dataset"}
        for key in sorted(written - allowed[kind]):
            keys = ", ".join(sorted(allowed[kind])) or "no other keys"
            raise SpecError(f"{section}.{key} does not apply to '{kind}'; it takes {keys}")


# ---------------------------------------------------------------- generic typed building


_INTERNAL = frozenset({"path", "text"})


def _build(cls: type[Any], table: Any, where: str) -> Any:
    """Make dataclass `cls` from a TOML table, rejecting unknown keys and wrong types."""
    if not isinstance(table, dict):
        raise SpecError(f"{where or 'the file'} must be a table but got {table!r}")
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in table:
        if key not in names:
            public = [n for n in names if n not in _INTERNAL] + (["search"] if not where else [])
            public = list(dict.fromkeys(public))
            raise SpecError(
                f"unknown key '{_join(where, key)}'; known keys here: {', '.join(public)}"
            )
    kwargs = {
        key: value
        if key in _INTERNAL and not where
        else _coerce(hints[key], value, _join(where, key))
        for key, value in table.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required key is missing
        raise SpecError(f"{where or 'the file'}: {exc}; add the missing key") from None


def _join(where: str, key: str) -> str:
    """Dotted key path for messages, e.g. 'search.lr.low'."""
    return f"{where}.{key}" if where else key


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check one TOML value against a type hint, converting ints to floats where allowed."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        return _coerce(options[0], value, where)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise SpecError(
                f"{where} must be one of {', '.join(map(repr, allowed))} but got {value!r}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise SpecError(f"{where} must be a list but got {value!r}")
        return tuple(_coerce(get_args(tp)[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, str):
        return value
    raise SpecError(f"{where} must be {_describe(tp)} but got {value!r}")


def _describe(tp: Any) -> str:
    """Human name of a type for error messages."""
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


# ---------------------------------------------------------------- the search space


def _parse_search(table: Any, free: bool = False) -> dict[str, ParamRange]:
    """Turn [search] into typed ranges, in suggestion order.

    With `free` (a user's objective) any name is searchable, suggested in the file's order;
    the built-in models take the names of their training settings, in a fixed order.
    """
    if not isinstance(table, dict):
        raise SpecError(f"search must be a table but got {table!r}")
    for name in table:
        if free and not name.isidentifier():
            raise SpecError(f"search.{name}: a parameter name must be a Python identifier")
        if not free and name not in TUNABLE:
            raise SpecError(
                f"unknown key 'search.{name}'; searchable hyperparameters: {', '.join(TUNABLE)}"
            )
    order = list(table) if free else [name for name in TUNABLE if name in table]
    search: dict[str, ParamRange] = {}
    for name in order:
        raw = dict(table[name]) if isinstance(table[name], dict) else table[name]
        when = _parse_when(name, raw.pop("when", None) if isinstance(raw, dict) else None, search)
        rng = _parse_free(name, raw) if free else _parse_range(name, raw)
        search[name] = dataclasses.replace(rng, when=when)
    return search


def _parse_when(name: str, raw: Any, earlier: Mapping[str, ParamRange]) -> When:
    """`when = { batch_norm = false }`: named choice parameters, declared earlier, and values."""
    if raw is None:
        return ()
    where = f"search.{name}.when"
    if not isinstance(raw, dict) or not raw:
        raise SpecError(f"{where} must be a table like {{ batch_norm = false }} but got {raw!r}")
    conditions = []
    for other, wanted in raw.items():
        rng = earlier.get(other)
        if not isinstance(rng, Choice):
            declared = ", ".join(n for n, r in earlier.items() if isinstance(r, Choice)) or "none"
            raise SpecError(
                f"{where} names '{other}', which is not a choices parameter declared before "
                f"{name} (declared so far: {declared}); declare it first, with choices = [...]"
            )
        values = tuple(wanted) if isinstance(wanted, list) else (wanted,)
        for value in values:
            if value not in rng.choices or type(value) is not type(rng.choices[0]):
                raise SpecError(
                    f"{where}.{other} = {value!r} is not one of its choices "
                    f"{', '.join(map(repr, rng.choices))}"
                )
        conditions.append((other, values))
    return tuple(conditions)


def _parse_free(name: str, raw: Any) -> ParamRange:
    """A user's parameter: the type comes from the range (integers stay integers)."""
    where = f"search.{name}"
    if not isinstance(raw, dict):
        raise SpecError(
            f"{where} must be a table like {{ low = .., high = .. }} or {{ choices = [..] }}"
        )
    if "choices" in raw:
        choice: Choice = _build(Choice, raw, where)
        _check_choices(choice.choices, where)
        return Choice(tuple(choice.choices))
    if "grow" in raw:
        raise SpecError(
            f"{where}.grow needs hard limits, which only the built-in parameters have; remove it"
        )
    numbers = [raw.get(key) for key in ("low", "high", "step") if raw.get(key) is not None]
    is_int = all(isinstance(v, int) and not isinstance(v, bool) for v in numbers)
    rng: FloatRange | IntRange = _build(IntRange if is_int else FloatRange, raw, where)
    _check_range(name, rng, where)
    return rng


def _check_choices(choices: tuple[Any, ...], where: str) -> None:
    """Non-empty, distinct, and of one scalar type (Optuna stores them by index)."""
    if not choices:
        raise SpecError(f"{where}.choices is empty; list at least one value")
    for value in choices:
        if not isinstance(value, SCALAR):
            raise SpecError(f"{where}.choices: {value!r} is not a string, number or boolean")
    if len({type(v) for v in choices}) > 1:
        raise SpecError(f"{where}.choices mixes types ({', '.join(map(repr, choices))}); use one")
    if len(set(choices)) < len(choices):
        raise SpecError(f"{where}.choices lists a value twice: {', '.join(map(repr, choices))}")


def _parse_range(name: str, raw: Any) -> ParamRange:
    """One [search.<name>] table to a typed, validated range."""
    where = f"search.{name}"
    kind = get_type_hints(TrainingSpec)[name]
    if not isinstance(raw, dict):
        raise SpecError(
            f"{where} must be a table like {{ low = .., high = .. }} or {{ choices = [..] }}"
        )
    if "choices" in raw:
        choice: Choice = _build(Choice, raw, where)
        if not choice.choices:
            raise SpecError(f"{where}.choices is empty; list at least one value")
        values = tuple(_coerce(kind, v, f"{where}.choices") for v in choice.choices)
        for value in values:
            _check_bound(name, value, f"{where}.choices")
        return Choice(values)
    if kind is float:
        rng: FloatRange | IntRange = _build(FloatRange, raw, where)
    elif kind is int:
        rng = _build(IntRange, raw, where)
    else:
        raise SpecError(f"{where} takes only choices = [...] but got {raw!r}")
    _check_range(name, rng, where)
    return rng


def _check_range(name: str, rng: FloatRange | IntRange, where: str) -> None:
    """Ordered bounds, positive on a log scale, a sensible step, inside the allowed domain."""
    if rng.low > rng.high:
        raise SpecError(
            f"{where}: low must be ≤ high but got low={rng.low}, high={rng.high}; swap them"
        )
    if rng.log and rng.low <= 0:
        raise SpecError(f"{where}.low must be > 0 on a log scale but got {rng.low}")
    if rng.step is not None and rng.step <= 0:
        raise SpecError(f"{where}.step must be > 0 but got {rng.step}")
    if rng.log and rng.step not in (None, 1):
        raise SpecError(f"{where}: a log scale cannot have a step; drop one of them")
    _check_bound(name, rng.low, f"{where}.low")
    _check_bound(name, rng.high, f"{where}.high")


def _check_bound(name: str, value: Any, where: str) -> None:
    """Keep numeric hyperparameters inside the values that make sense for them."""
    if name not in BOUNDS:
        return
    low, high, open_high = BOUNDS[name]
    if not math.isfinite(value) or value < low:
        raise SpecError(f"{where} must be ≥ {low:g} but got {value}")
    if value > high or (open_high and value >= high):
        relation = "<" if open_high else "≤"
        raise SpecError(f"{where} must be {relation} {high:g} but got {value}")


def _check_spec(spec: StudySpec) -> None:
    """Cross-field checks: defaults in range, sizes positive, sampler and pruner keys fit."""
    if not spec.name.strip():
        raise SpecError("name must not be empty")
    for name in TUNABLE:
        value = getattr(spec.training, name)
        if not isinstance(value, str | bool):
            _check_bound(name, value, f"training.{name}")
    if spec.seed < 0:
        raise SpecError(f"seed must be ≥ 0 but got {spec.seed}")
    _positive(spec.keep_weights, "keep_weights")
    _positive(spec.max_failures, "max_failures")
    if spec.objective is not None:
        _check_objective(spec.objective)
    else:
        _check_dataset(spec)
    _positive(spec.data.train_size, "data.train_size")
    _positive(spec.data.valid_size, "data.valid_size")
    _positive(spec.training.max_epochs, "training.max_epochs")
    _positive(spec.training.patience, "training.patience")
    for i, width in enumerate(spec.model.hidden):
        _positive(width, f"model.hidden[{i}]")
    _check_kind_keys("sampler", spec.sampler, SAMPLER_KEYS)
    _check_narrowing(spec)
    _check_kind_keys("pruner", spec.pruner, PRUNER_KEYS)
    if spec.pruner.kind == "threshold" and spec.pruner.lower is None and spec.pruner.upper is None:
        raise SpecError("pruner kind 'threshold' needs lower or upper; add one of them")


def _check_objective(objective: ObjectiveSpec) -> None:
    """A metric name, a positive epoch count, and entries written as file.py:function."""
    if not objective.metric.strip():
        raise SpecError("objective.metric must name the value the function reports")
    _positive(objective.max_epochs, "objective.max_epochs")
    for key in ("entry", "test"):
        value = getattr(objective, key)
        if value is not None and (value.count(":") != 1 or not all(value.split(":"))):
            raise SpecError(
                f"objective.{key} must be 'file.py:function' or 'package.module:function' "
                f"but got {value!r}"
            )


def _positive(value: int, where: str) -> None:
    """Counts and sizes must be at least 1."""
    if value < 1:
        raise SpecError(f"{where} must be ≥ 1 but got {value}")


def _check_kind_keys(
    section: str, value: Any, allowed: dict[str, frozenset[str]], kind: str | None = None
) -> None:
    """A key set for one kind (e.g. reduction_factor) must not sit on another kind."""
    kind = kind or value.kind
    default = type(value)()
    for f in dataclasses.fields(value):
        if f.name in ("kind", "dataset") or getattr(value, f.name) == getattr(default, f.name):
            continue
        if f.name not in allowed[kind]:
            keys = ", ".join(sorted(allowed[kind])) or "no other keys"
            raise SpecError(f"{section}.{f.name} does not apply to '{kind}'; it takes {keys}")


def _check_dataset(spec: StudySpec) -> None:
    """Data, model and searched keys must be ones this data set's objective uses."""
    dataset = spec.data.dataset
    _check_kind_keys("data", spec.data, DATA_KEYS, dataset)
    _check_kind_keys("model", spec.model, MODEL_KEYS, dataset)
    for name in spec.search:
        if name not in OBJECTIVE_PARAMS[dataset]:
            raise SpecError(
                f"search.{name} is not used by the {dataset} objective; it searches "
                f"{', '.join(p for p in TUNABLE if p in OBJECTIVE_PARAMS[dataset])}"
            )
    for i, width in enumerate(spec.model.channels):
        _positive(width, f"model.channels[{i}]")
    _positive(spec.model.convs_per_block, "model.convs_per_block")
    _positive(spec.model.stem_stride, "model.stem_stride")
    if dataset in IMAGE_FOLDERS:
        if spec.data.image_size < 8:
            raise SpecError(f"data.image_size must be ≥ 8 but got {spec.data.image_size}")
        fractions = spec.data.valid_fraction + spec.data.test_fraction
        if not (spec.data.valid_fraction > 0 and spec.data.test_fraction >= 0 and fractions < 1):
            raise SpecError(
                "data.valid_fraction must be > 0, data.test_fraction ≥ 0 and their sum < 1 "
                f"but got {spec.data.valid_fraction} and {spec.data.test_fraction}"
            )


def _check_narrowing(spec: StudySpec) -> None:
    """Narrowing keys in range, and `grow` only where a narrowing sampler can use it."""
    sampler = spec.sampler
    _positive(sampler.trials_per_round, "sampler.trials_per_round")
    _positive(sampler.min_keep, "sampler.min_keep")
    _positive(sampler.min_complete, "sampler.min_complete")
    if sampler.drop_after < 0:
        raise SpecError(
            f"sampler.drop_after must be ≥ 0 (0: drop at once) but got {sampler.drop_after}"
        )
    if sampler.rounds < 0:
        raise SpecError(
            f"sampler.rounds must be ≥ 0 (0: use trials_per_round) but got {sampler.rounds}"
        )
    if not 0 < sampler.keep <= 1:
        raise SpecError(f"sampler.keep must be in (0, 1] but got {sampler.keep}")
    if not 0 <= sampler.margin <= 1:
        raise SpecError(f"sampler.margin must be in [0, 1] but got {sampler.margin}")
    if not 0 <= sampler.min_width <= 1:
        raise SpecError(f"sampler.min_width must be in [0, 1] but got {sampler.min_width}")
    if sampler.wait_timeout <= 0:
        raise SpecError(f"sampler.wait_timeout must be > 0 seconds but got {sampler.wait_timeout}")
    for name, rng in spec.search.items():
        if not isinstance(rng, Choice) and rng.grow != "none" and sampler.kind != "narrowing":
            raise SpecError(
                f"search.{name}.grow needs sampler kind 'narrowing' but the kind is "
                f"'{sampler.kind}'; remove grow or switch the sampler"
            )


def distribution_bounds(name: str, rng: FloatRange | IntRange) -> tuple[float, float]:
    """The bounds Optuna sees: low/high, or the hard limits on a side that may grow.

    A stepped range grows by whole steps so the grid keeps its anchor.
    """
    if rng.grow == "none":  # a user's parameter has no hard limits: its range is all there is
        return rng.low, rng.high
    limit_low, limit_high, open_high = BOUNDS[name]
    if rng.log:
        limit_low = max(limit_low, 1e-12)
    step = rng.step or 0.0
    low, high = float(rng.low), float(rng.high)
    if rng.grow in ("low", "both"):
        low = rng.low - math.floor((rng.low - limit_low) / step) * step if step else limit_low
    if rng.grow in ("high", "both"):
        room = limit_high - rng.high - (step or 1e-6) * open_high
        high = rng.high + math.floor(room / step) * step if step else rng.high + room
    if isinstance(rng, IntRange):
        return math.ceil(low), math.floor(high)
    return low, high
