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


# A signature's format, recorded in it: rules for older signatures apply only to signatures that
# really predate a feature. 2: `when` is written wherever a file has it (absent means none).
FORMAT_KEY = "signature_format"
FORMAT = "2"


def signature(spec: StudySpec) -> dict[str, str]:
    """Every setting that shapes the search, as flat 'section.key' -> text (comments ignored)."""
    flat: dict[str, str] = {FORMAT_KEY: FORMAT, "seed": str(spec.seed)}
    for section in SECTIONS:
        flat |= _flatten(section, getattr(spec, section))
    for name, rng in spec.search.items():
        if isinstance(rng, Choice):
            flat[f"search.{name}"] = "choices " + ", ".join(map(str, rng.choices))
        else:
            parts = [f"{rng.low:g}..{rng.high:g}", "log" if rng.log else ""]
            parts += [f"step {rng.step:g}" if rng.step not in (None, 1) else ""]
            flat[f"search.{name}"] = " ".join(p for p in parts if p)
        if rng.when:
            flat[f"search.{name}.when"] = _when_text(rng.when)
    if spec.objective is not None:
        flat |= objective_signature(spec)
    return flat


def _when_text(when: When) -> str:
    """A `when` as 'batch_norm=False' (alternatives joined with |, conditions with ;)."""
    return "; ".join(f"{name}={'|'.join(map(str, values))}" for name, values in when)


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
