"""A study's signature: every setting that shapes the search, as it is recorded on the study.

It lives with the parser so that what a study file means and what a study records cannot drift
apart: resuming compares the signature the same file gives now with the stored one.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from hpsearch.spec._types import (
    Choice,
    DataSpec,
    ModelSpec,
    ParamRange,
    PrunerSpec,
    SamplerSpec,
    StudySpec,
    TrainingSpec,
    When,
)

# The spec's sections that a signature records, and their settings classes.
SECTIONS: dict[str, type] = {
    "data": DataSpec,
    "model": ModelSpec,
    "training": TrainingSpec,
    "sampler": SamplerSpec,
    "pruner": PrunerSpec,
}


# A signature's format, recorded in it: a stored signature is compared with the same file's
# signature written in the stored one's format, and rules for older signatures apply only to
# signatures that really predate a feature. 1 (no key): before `when`, with MNIST's dropout
# implicitly conditional on BatchNorm. 2: `when` is written wherever a file has it (absent means
# none). 3: ranges and choices exactly (repr and JSON), where 1 and 2 rounded ranges to 6 digits
# and wrote 1 and "1" alike.
FORMAT_KEY = "signature_format"
FORMAT = "3"
_ROUNDED = ("1", "2")  # formats that wrote ranges with :g and choices with str()


def signature(spec: StudySpec, form: str = FORMAT) -> dict[str, str]:
    """Every setting that shapes the search, as flat 'section.key' -> text (comments ignored).

    `form` writes it in an older format, to compare with a signature stored in that format.
    """
    flat: dict[str, str] = {} if form == "1" else {FORMAT_KEY: form}
    flat["seed"] = str(spec.seed)
    for section in SECTIONS:
        flat |= _flatten(section, getattr(spec, section))
    for name, rng in spec.search.items():
        flat[f"search.{name}"] = _range_text(rng, form in _ROUNDED)
        if rng.when:
            flat[f"search.{name}.when"] = _when_text(rng.when, form in _ROUNDED)
    if spec.objective is not None:
        flat |= objective_signature(spec)
    return flat


def _range_text(rng: ParamRange, rounded: bool) -> str:
    """'choices ["a", "b"]', or '0.0001..0.1 log', or '0.1..0.5 step 0.1'."""
    number = (lambda v: f"{v:g}") if rounded else repr
    if isinstance(rng, Choice):
        if rounded:
            return "choices " + ", ".join(map(str, rng.choices))
        return "choices " + json.dumps(list(rng.choices))
    parts = [f"{number(rng.low)}..{number(rng.high)}", "log" if rng.log else ""]
    parts += [f"step {number(rng.step)}" if rng.step not in (None, 1) else ""]
    return " ".join(p for p in parts if p)


def _when_text(when: When, rounded: bool) -> str:
    """A `when` as 'batch_norm=[false]' (conditions joined with ;); older: 'batch_norm=False'."""
    if rounded:
        return "; ".join(f"{name}={'|'.join(map(str, values))}" for name, values in when)
    return "; ".join(f"{name}={json.dumps(list(values))}" for name, values in when)


def objective_signature(spec: StudySpec) -> dict[str, str]:
    """A user's objective: its settings, its config, and the source of its entry files."""
    from hpsearch.objectives._entry import source_hash

    objective = spec.objective
    assert objective is not None
    flat = {
        f"objective.{key}": str(getattr(objective, key))
        for key in ("entry", "metric", "direction", "max_epochs", "test")
    }
    flat |= {f"objective.config.{k}": json.dumps(v) for k, v in objective.config.items()}
    for key in ("entry", "test"):
        entry = getattr(objective, key)
        if entry is not None:
            flat[f"objective.{key}.source"] = source_hash(entry, spec.path.parent) or "(unknown)"
    return flat


# The built-in MLP used dropout only without BatchNorm before study files could say so with
# `when`; a study made then (a signature with no format) had that rule without writing it.
_IMPLICIT_BEFORE_WHEN = {"search.dropout.when": "batch_norm=False"}


def _implicit(old: dict[str, str]) -> dict[str, str]:
    """Rules a signature from before `when` had without recording them (MNIST's dropout)."""
    if FORMAT_KEY in old:
        return {}  # written since `when` existed: an absent `when` means none
    if old.get("data.dataset") == "mnist" and {"search.dropout", "search.batch_norm"} <= old.keys():
        return dict(_IMPLICIT_BEFORE_WHEN)
    return {}


def field_defaults() -> dict[str, str]:
    """Every section setting's default, as in a signature."""
    flat: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        flat |= _flatten(section, cls())
    return flat


def _flatten(section: str, settings: Any) -> dict[str, str]:
    """One section's settings as 'section.key' -> text."""
    return {f"{section}.{k}": str(v) for k, v in dataclasses.asdict(settings).items()}


def differences(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Human lines for every setting that was added, removed or changed.

    A setting that a later hpsearch added reads as its default in older signatures, so a study
    made before it existed resumes unchanged unless the study file sets it otherwise.
    """
    if old:
        old = {**{k: v for k, v in field_defaults().items() if k in new}, **_implicit(old), **old}
    old, new = ({k: v for k, v in s.items() if k != FORMAT_KEY} for s in (old, new))
    lines = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, "(absent)"), new.get(key, "(absent)")
        if before != after:
            lines.append(f"{key}: {before} -> {after}")
    return lines
