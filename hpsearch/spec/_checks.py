"""Checks that span keys and sections: bounds, kinds' settings, data sets, narrowing."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from hpsearch.errors import SpecError
from hpsearch.spec._types import (
    BOUNDS,
    DATA_KEYS,
    IMAGE_FOLDERS,
    MODEL_KEYS,
    OBJECTIVE_PARAMS,
    PRUNER_KEYS,
    SAMPLER_KEYS,
    TUNABLE,
    Choice,
    FloatRange,
    IntRange,
    ObjectiveSpec,
    PrunerSpec,
    StudySpec,
)


def check_range(name: str, rng: FloatRange | IntRange, where: str) -> None:
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
    if isinstance(rng, IntRange) and max(abs(rng.low), abs(rng.high)) > _EXACT_INT:
        raise SpecError(
            f"{where}: low and high must be within ±{_EXACT_INT} (2**53, the whole numbers the "
            f"samplers hold exactly) but got low={rng.low}, high={rng.high}"
        )
    if not math.isfinite(rng.high - rng.low):
        raise SpecError(
            f"{where}: high - low must be a finite number but got low={rng.low}, "
            f"high={rng.high}; narrow the range"
        )
    if isinstance(rng, FloatRange) and rng.step and (rng.high - rng.low) / rng.step > _MAX_STEPS:
        raise SpecError(
            f"{where}.step = {rng.step} is too fine for high - low = {rng.high - rng.low:.3g}: "
            "more than 1e15 steps, which floats cannot tell apart; use a larger step, or leave "
            "step out"
        )
    check_bound(name, rng.low, f"{where}.low")
    check_bound(name, rng.high, f"{where}.high")


_EXACT_INT = 2**53
# A stepped float range's grid points low + k * step: beyond about 1e15 of them neighbours are no
# longer distinct floats, and Optuna's Decimal arithmetic fails (InvalidOperation) near 1e28.
_MAX_STEPS = 1e15


def check_bound(name: str, value: Any, where: str) -> None:
    """Keep numeric hyperparameters inside the values that make sense for them."""
    if name not in BOUNDS:
        return
    low, high, open_high = BOUNDS[name]
    if not math.isfinite(value):
        raise SpecError(f"{where} must be a finite number but got {value}")
    if value < low:
        raise SpecError(f"{where} must be ≥ {low:g} but got {value}")
    if value > high or (open_high and value >= high):
        relation = "<" if open_high else "≤"
        raise SpecError(f"{where} must be {relation} {high:g} but got {value}")


def check_spec(spec: StudySpec) -> None:
    """Cross-field checks: defaults in range, sizes positive, sampler and pruner keys fit."""
    if not spec.name.strip():
        raise SpecError("name must not be empty")
    for name in TUNABLE:
        value = getattr(spec.training, name)
        if not isinstance(value, str | bool):
            check_bound(name, value, f"training.{name}")
    if spec.seed < 0:
        raise SpecError(f"seed must be ≥ 0 but got {spec.seed}")
    _positive(spec.keep_weights, "keep_weights")
    _positive(spec.max_failures, "max_failures")
    if spec.objective is not None:
        _check_objective(spec.objective)
    else:
        _check_dataset(spec)
        _check_batch_norm(spec)
    _positive(spec.data.train_size, "data.train_size")
    _positive(spec.data.valid_size, "data.valid_size")
    _positive(spec.training.max_epochs, "training.max_epochs")
    _positive(spec.training.patience, "training.patience")
    for i, width in enumerate(spec.model.hidden):
        _positive(width, f"model.hidden[{i}]")
    _check_kind_keys("sampler", spec.sampler, SAMPLER_KEYS)
    _check_narrowing(spec)
    _check_kind_keys("pruner", spec.pruner, PRUNER_KEYS)
    _check_pruner(spec.pruner)


def _check_objective(objective: ObjectiveSpec) -> None:
    """A metric name, a positive epoch count, and entries written as file.py:function."""
    if not objective.metric.strip():
        raise SpecError("objective.metric must name the value the function reports")
    if objective.metric == "epoch":
        raise SpecError(
            "objective.metric cannot be 'epoch', the name ctx.report(epoch, ...) gives the "
            'epoch number; name the value itself, e.g. metric = "valid_accuracy"'
        )
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
        if not 8 <= spec.data.image_size <= _MAX_IMAGE_SIZE:
            raise SpecError(
                f"data.image_size must be in [8, {_MAX_IMAGE_SIZE}] (images are decoded into "
                f"memory at that size) but got {spec.data.image_size}"
            )
        if not spec.model.channels:
            raise SpecError("model.channels is empty; list at least one block, e.g. [16, 32]")
        _check_depth(spec)
        fractions = spec.data.valid_fraction + spec.data.test_fraction
        if not (spec.data.valid_fraction > 0 and spec.data.test_fraction >= 0 and fractions < 1):
            raise SpecError(
                "data.valid_fraction must be > 0, data.test_fraction ≥ 0 and their sum < 1 "
                f"but got {spec.data.valid_fraction} and {spec.data.test_fraction}"
            )


def _check_pruner(pruner: PrunerSpec) -> None:
    """Settings Optuna's pruners accept, refused here rather than when `run` builds the pruner."""
    if pruner.kind == "threshold":
        if pruner.lower is None and pruner.upper is None:
            raise SpecError("pruner kind 'threshold' needs lower or upper; add one of them")
        if pruner.lower is not None and pruner.upper is not None and pruner.lower > pruner.upper:
            raise SpecError(
                f"pruner: lower must be ≤ upper but got lower={pruner.lower}, "
                f"upper={pruner.upper}; swap them"
            )
    for key in ("n_startup_trials", "n_warmup_steps"):
        if getattr(pruner, key) < 0:
            raise SpecError(f"pruner.{key} must be ≥ 0 but got {getattr(pruner, key)}")
    _positive(pruner.min_resource, "pruner.min_resource")
    if pruner.reduction_factor < 2:
        raise SpecError(
            f"pruner.reduction_factor must be ≥ 2 (keep 1 in that many trials per rung) "
            f"but got {pruner.reduction_factor}"
        )


_MAX_IMAGE_SIZE = 1024


def _values(spec: StudySpec, name: str) -> tuple[Any, ...]:
    """Values a built-in hyperparameter can take: its choices, its range's low, or its setting."""
    rng = spec.search.get(name)
    if isinstance(rng, Choice):
        return rng.choices
    return (getattr(spec.training, name),) if rng is None else (rng.low,)


def _check_batch_norm(spec: StudySpec) -> None:
    """BatchNorm cannot train on batches of one example (every such trial would fail)."""
    if 1 in _values(spec, "batch_size") and True in _values(spec, "batch_norm"):
        where = "search.batch_size" if "batch_size" in spec.search else "training.batch_size"
        raise SpecError(
            f"{where} can be 1 while batch_norm can be true, and BatchNorm cannot train on one "
            "example per batch; use batch sizes ≥ 2 or batch_norm = false"
        )


def _check_depth(spec: StudySpec) -> None:
    """Every block but the last halves the image with a 2x2 max-pool, which needs 2 pixels."""
    model = spec.model
    side = (spec.data.image_size - 1) // model.stem_stride + 1  # after the padded 3x3 stem
    for pools in range(len(model.channels) - 1):
        if side < 2:
            raise SpecError(
                f"model.channels has {len(model.channels)} blocks, but a "
                f"{spec.data.image_size}-pixel image (stem_stride {model.stem_stride}) is 1 "
                f"pixel after {pools} of their max-pools; use at most {pools + 1} blocks or a "
                "larger data.image_size"
            )
        side //= 2


def _check_narrowing(spec: StudySpec) -> None:
    """Narrowing keys in range, and `grow` only where a narrowing sampler can use it."""
    sampler = spec.sampler
    if sampler.n_startup_trials < 0:
        raise SpecError(f"sampler.n_startup_trials must be ≥ 0 but got {sampler.n_startup_trials}")
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
        # a step wider than what is left above high leaves no room (never a negative one)
        room = max(0.0, limit_high - rng.high - (step or 1e-6) * open_high)
        high = rng.high + math.floor(room / step) * step if step else rng.high + room
    if isinstance(rng, IntRange):
        return math.ceil(low), math.floor(high)
    return low, high
