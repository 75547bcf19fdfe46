"""A spec back to study-file TOML: every setting written out, defaults filled in.

Parsing what `to_toml` writes gives the same spec and the same signature, so `hpsearch show`
prints a file that would run exactly the study that storage holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hpsearch.spec._types import (
    DATA_KEYS,
    MODEL_KEYS,
    PRUNER_KEYS,
    SAMPLER_KEYS,
    Choice,
    FloatRange,
    IntRange,
    ParamRange,
    StudySpec,
)

_TOP = ("name", "description", "seed", "keep_weights", "max_failures")


def to_toml(spec: StudySpec) -> str:
    """The study file that parses back to `spec` (comments and key order aside)."""
    import tomli_w

    return tomli_w.dumps(to_table(spec))


def to_table(spec: StudySpec) -> dict[str, Any]:
    """The spec as a TOML table: only the keys that apply to its data set and kinds."""
    table: dict[str, Any] = {key: getattr(spec, key) for key in _TOP}
    if spec.objective is None:
        dataset = spec.data.dataset
        table["data"] = _section(spec.data, {"dataset"} | DATA_KEYS[dataset])
        table["model"] = _section(spec.model, MODEL_KEYS[dataset])
        table["training"] = _section(spec.training, None)
    else:
        objective = _section(spec.objective, None)
        objective["config"] = _plain(spec.objective.config)
        table["objective"] = objective
    table["search"] = {name: _range(rng) for name, rng in spec.search.items()}
    table["sampler"] = _section(spec.sampler, {"kind"} | SAMPLER_KEYS[spec.sampler.kind])
    table["pruner"] = _section(spec.pruner, {"kind"} | PRUNER_KEYS[spec.pruner.kind])
    return table


def _section(settings: Any, keys: set[str] | frozenset[str] | None) -> dict[str, Any]:
    """One section's settings (those in `keys`, or all), leaving out unset ones."""
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    chosen = {k: v for k, v in values.items() if (keys is None or k in keys) and v is not None}
    return {k: _plain(v) for k, v in chosen.items() if k != "config"}


def _range(rng: ParamRange) -> dict[str, Any]:
    """One [search] entry as the parser reads it: bounds or choices, then `when`."""
    if isinstance(rng, Choice):
        written: dict[str, Any] = {"choices": list(rng.choices)}
    else:
        written = {"low": rng.low, "high": rng.high, "log": rng.log}
        if isinstance(rng, IntRange) or rng.step is not None:
            written["step"] = rng.step
        if isinstance(rng, FloatRange | IntRange) and rng.grow != "none":
            written["grow"] = rng.grow
    if rng.when:
        written["when"] = {name: list(values) for name, values in rng.when}
    return written


def _plain(value: Any) -> Any:
    """Tuples to lists and read-only mappings to dicts, all the way down, for the writer."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
