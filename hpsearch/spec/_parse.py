"""Study-file TOML to a spec, key by key: unknown keys and wrong types fail with the key named."""

from __future__ import annotations

import dataclasses
import datetime
import math
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from hpsearch.errors import SpecError
from hpsearch.spec._checks import check_bound, check_range, check_spec
from hpsearch.spec._types import (
    DATA_KEYS,
    MODEL_KEYS,
    PRUNER_KEYS,
    SAMPLER_KEYS,
    SCALAR,
    TUNABLE,
    Choice,
    FloatRange,
    IntRange,
    ParamRange,
    StudySpec,
    TrainingSpec,
    When,
)


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
    check_spec(spec)
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
    _check_config_value(config, "objective.config")
    return {"config": types.MappingProxyType(config)}


def _check_config_value(value: Any, where: str) -> None:
    """Config is recorded as JSON on the study, so TOML's dates and times are refused."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_config_value(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_config_value(item, f"{where}[{i}]")
    elif isinstance(value, datetime.date | datetime.time):
        raise SpecError(
            f"{where} is a TOML date or time ({value}), which a study cannot record; "
            f'write it as a string, e.g. "{value}"'
        )


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
        return _finite(value, where)
    if tp is str and isinstance(value, str):
        return value
    raise SpecError(f"{where} must be {_describe(tp)} but got {value!r}")


def _finite(value: float, where: str) -> float:
    """A float setting as a finite float: NaN, inf and integers past a float's range are refused."""
    try:
        number = float(value)
    except OverflowError:
        raise SpecError(
            f"{where} must be a number a float can hold (at most about 1.8e308) but got an "
            f"integer of {len(str(abs(value)))} digits"
        ) from None
    if not math.isfinite(number):
        raise SpecError(f"{where} must be a finite number but got {number}")
    return number


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
    _check_mixed(raw, where)
    rng: FloatRange | IntRange = _build(IntRange if is_int else FloatRange, raw, where)
    check_range(name, rng, where)
    return rng


_EXACT_INT = 2**53  # past this, an integer end is refused when the range is built


def _check_mixed(raw: dict[str, Any], where: str) -> None:
    """`low = 8, high = 32.0`: integers and whole floats mixed; which type is meant is unclear."""
    ends = {k: raw[k] for k in ("low", "high", "step") if type(raw.get(k)) in (int, float)}
    ints = [k for k, v in ends.items() if type(v) is int]
    floats = [k for k, v in ends.items() if type(v) is float]
    if ints and floats and all(float(ends[k]).is_integer() for k in floats):
        key, end = floats[0], ints[0]
        if abs(ends[end]) > _EXACT_INT:  # no float holds it: its own message says so
            return
        raise SpecError(
            f"{where}: {end} = {ends[end]} is an integer but {key} = {ends[key]} is not, "
            f"so the type is unclear; write {key} = {int(ends[key])} for an integer parameter, "
            f"or {end} = {float(ends[end])} for a float one"
        )


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
            check_bound(name, value, f"{where}.choices")
        return Choice(values)
    if kind is float:
        rng: FloatRange | IntRange = _build(FloatRange, raw, where)
    elif kind is int:
        rng = _build(IntRange, raw, where)
    else:
        raise SpecError(f"{where} takes only choices = [...] but got {raw!r}")
    check_range(name, rng, where)
    return rng
