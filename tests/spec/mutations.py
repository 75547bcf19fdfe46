"""Invalid study files, made by breaking valid ones (tests/spec/strategies.py) in one place.

Each mutation knows the key its error must name: wrong types, out-of-range and inverted bounds,
NaN and inf, huge numbers, unknown keys at every level, keys of another kind, missing keys, a bad
`when`, duplicate keys, bytes that are not UTF-8, an entry that cannot be imported, a TOML date
in a user's config, and models that cannot train (batches of one with BatchNorm, a CNN deeper
than its images).

A breakage hpsearch accepts (or answers with a traceback) is named in OPEN_BUGS and left out of
the draw until it is fixed; tests/spec/test_found_bugs.py reproduces it meanwhile, and keeps the
reproduction of every bug fixed so far.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import math
import re
import types
from collections.abc import Callable
from typing import Any, NamedTuple, Union, get_args, get_origin, get_type_hints

from hypothesis import assume
from hypothesis import strategies as st
from strategies import (
    IDENTIFIERS,
    KINDS,
    STUDY_FILE,
    TYPES,
    Kind,
    StudyFile,
    choices_of,
    literal_values,
    max_blocks,
    study_files,
)
from toml_text import Raw, Table, key_text, toml_text, value_text

from hpsearch.spec import (
    BOUNDS,
    DATA_KEYS,
    MODEL_KEYS,
    OBJECTIVE_PARAMS,
    PRUNER_KEYS,
    SAMPLER_KEYS,
    TUNABLE,
    DataSpec,
    Grow,
    ModelSpec,
    ObjectiveSpec,
    PrunerSpec,
    SamplerSpec,
    StudySpec,
)
from hpsearch.spec import SECTIONS as SIGNED_SECTIONS

KeyPath = tuple[str, ...]  # a key and the tables above it, e.g. ("search", "lr", "low")
DROP = object()  # a candidate value that removes the key

# The labels of candidates hpsearch mishandles today (accepted by `create`, then a traceback or
# failing trials), left out of the draw until fixed. A new open bug goes here, its label on the
# candidates it breaks, with its smallest reproduction in test_found_bugs.py (strict xfail);
# when it is fixed, the label goes and the reproduction stays as a regression test.
# search.x = { low = 10**400, high = 1e308 }: the check of an integer end beside a whole float
# end (low = 4, high = 32.0) has an OverflowError traceback (test_found_bugs.py).
HUGE_BESIDE_WHOLE_FLOAT = "huge integer beside a whole float"
OPEN_BUGS: frozenset[str] = frozenset({HUGE_BESIDE_WHOLE_FLOAT})

SECTIONS: dict[str, type] = {**SIGNED_SECTIONS, "objective": ObjectiveSpec}
TOP_KEYS = ("description", "seed", "name", "keep_weights", "max_failures")
RANGE_KEYS = frozenset({"low", "high", "log", "step", "grow", "when", "choices"})


@dataclasses.dataclass(frozen=True)
class Invalid:
    """A broken study file: what was broken, its files, and the names its error must mention."""

    kind: str
    change: str
    files: dict[str, bytes]
    names: tuple[str, ...]

    def __str__(self) -> str:
        """What was broken, and the broken file's text, for assertion messages."""
        text = self.files[STUDY_FILE].decode("utf-8", errors="backslashreplace")
        return f"{self.kind}: {self.change} (the error must name {' or '.join(self.names)})\n{text}"


class Candidate(NamedTuple):
    """One way to break a file: the key, its new values, the names to expect, any open bug."""

    path: KeyPath
    values: st.SearchStrategy[Any]
    names: tuple[str, ...]
    label: str = ""


# ---------------------------------------------------------------- tables


def get(table: Table, path: KeyPath) -> Any:
    """The value at path (None when absent)."""
    for key in path:
        table = table.get(key) if isinstance(table, dict) else None  # type: ignore[assignment]
    return table


def put(table: Table, path: KeyPath, value: Any) -> Table:
    """A copy of table with path set to value (DROP: removed); missing tables are added."""
    table = copy.deepcopy(table)
    inner = table
    for key in path[:-1]:
        inner = inner.setdefault(key, {})
    if value is DROP:
        inner.pop(path[-1], None)
    else:
        inner[path[-1]] = value
    return table


def dotted(path: KeyPath) -> str:
    """The key path as an error names it, e.g. search.lr.low."""
    return ".".join(path)


def sampler_kind(study: StudyFile) -> str:
    """The file's sampler kind (TPE when unset)."""
    return str(get(study.table, ("sampler", "kind")) or "tpe")


def pruner_kind(study: StudyFile) -> str:
    """The file's pruner kind (median when unset)."""
    return str(get(study.table, ("pruner", "kind")) or "median")


def section_keys(study: StudyFile) -> dict[str, frozenset[str]]:
    """The keys each section of this file may hold, for its objective and kinds."""
    if study.kind == "user":
        keys = {"objective": frozenset(f.name for f in dataclasses.fields(ObjectiveSpec))}
    else:
        keys = {
            "data": DATA_KEYS[study.kind] | {"dataset"},
            "model": MODEL_KEYS[study.kind],
            "training": frozenset(TYPES),
        }
    keys["sampler"] = SAMPLER_KEYS[sampler_kind(study)] | {"kind"}
    keys["pruner"] = PRUNER_KEYS[pruner_kind(study)] | {"kind"}
    return keys


def key_paths(study: StudyFile) -> list[KeyPath]:
    """Every key this file has or may have: top level, sections, and its ranges' keys."""
    paths: list[KeyPath] = [(key,) for key in TOP_KEYS]
    for section, keys in section_keys(study).items():
        paths += [(section, key) for key in sorted(keys - {"config"})]
    for name, rng in study.table.get("search", {}).items():
        paths += [("search", name, key) for key in rng if key != "when"]
    return paths


def hint(study: StudyFile, path: KeyPath) -> Any:
    """The type a key's value must have ("number": an integer or a float)."""
    if len(path) == 1:
        return get_type_hints(StudySpec)[path[0]]
    if path[0] == "search":
        if path[2] in ("low", "high", "step"):
            return "number" if study.kind == "user" else TYPES[path[1]]
        return {"log": bool, "grow": Grow, "choices": list}[path[2]]
    return get_type_hints(SECTIONS[path[0]])[path[1]]


def category(tp: Any) -> str:
    """int, float, number, str, bool, literal or list: what wrong values to try."""
    if get_origin(tp) in (Union, types.UnionType):
        tp = next(a for a in get_args(tp) if a is not type(None))
    if literal_values(tp):
        return "literal"
    if tp in (list, tuple) or get_origin(tp) is tuple:
        return "list"
    return tp if isinstance(tp, str) else tp.__name__


# ---------------------------------------------------------------- building an invalid file


def broken(
    kind: str, study: StudyFile, table: Table, change: str, names: tuple[str, ...]
) -> Invalid:
    """The invalid file made from study with table in place of its own."""
    files = {**study.files(), STUDY_FILE: toml_text(table).encode()}
    return Invalid(kind, change, files, names)


def open_ones(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates hpsearch handles today (see OPEN_BUGS)."""
    return [c for c in candidates if c.label not in OPEN_BUGS]


def from_candidates(
    draw: st.DrawFn, kind: str, study: StudyFile, found: list[Candidate]
) -> Invalid:
    """Break the file by one of the candidates."""
    found = open_ones(found)
    assume(found)
    candidate = draw(st.sampled_from(found))
    value = draw(candidate.values)
    table = put(study.table, candidate.path, value)
    change = f"{dotted(candidate.path)} = {'(removed)' if value is DROP else value_text(value)}"
    return broken(kind, study, table, change, candidate.names)


# ---------------------------------------------------------------- wrong types

WRONG: dict[str, st.SearchStrategy[Any]] = {
    "int": st.one_of(
        st.text(max_size=4), st.booleans(), st.sampled_from([0.5, 2.0, -3.5]), st.just([1])
    ),
    "float": st.one_of(st.text(max_size=4), st.booleans(), st.just([0.5]), st.just({})),
    "str": st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False), st.just(["a"])),
    "bool": st.one_of(st.integers(0, 1), st.sampled_from(["true", "yes"]), st.just(0.0)),
    "literal": st.one_of(st.integers(), st.booleans(), st.floats(allow_nan=False), st.just([])),
    "list": st.one_of(st.integers(), st.text(max_size=4), st.booleans(), st.just({})),
}
WRONG["number"] = WRONG["float"]


def wrong_types(study: StudyFile) -> list[Candidate]:
    """A value of another type at any key, a scalar for any table, a bad element in a list."""
    found = [
        Candidate(path, WRONG[category(hint(study, path))], (dotted(path),))
        for path in key_paths(study)
    ]
    tables: list[KeyPath] = [(name,) for name in ("search", *section_keys(study))]
    tables += [("objective", "config")] if study.kind == "user" else []
    tables += [("search", name) for name in study.table.get("search", {})]
    found += [
        Candidate(path, st.integers() | st.text(max_size=3), (dotted(path),)) for path in tables
    ]
    return found + wrong_elements(study)


def wrong_elements(study: StudyFile) -> list[Candidate]:
    """A list with one element of another type added: widths, or choices."""
    found = []
    for path in [("model", "hidden"), ("model", "channels")]:
        widths = get(study.table, path)
        if isinstance(widths, list):
            extra = st.sampled_from(["8", 8.0, True])
            found.append(Candidate(path, appended(widths, extra), (dotted(path),)))
    for name, rng in study.table.get("search", {}).items():
        if "choices" in rng:
            where = ("search", name, "choices")
            extra = wrong_choices(study, name, rng["choices"])
            found.append(Candidate(where, appended(rng["choices"], extra), (dotted(where),)))
    return found


def appended(items: list[Any], extra: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """The list with one drawn element added at its end."""
    return extra.map(lambda value: [*items, value])


def wrong_choices(study: StudyFile, name: str, choices: list[Any]) -> st.SearchStrategy[Any]:
    """Values that the choices of `name` must not take, for their type."""
    extra = st.one_of(st.text(max_size=3), st.integers(), st.floats(), st.booleans(), st.just([1]))
    return extra.filter(lambda value: wrong_choice(study, name, choices, value))


def wrong_choice(study: StudyFile, name: str, choices: list[Any], value: Any) -> bool:
    """Whether value added to the choices must be refused for its type."""
    if study.kind == "user":
        return isinstance(value, list) or type(value) is not type(choices[0])
    kind = TYPES[name]
    if kind is float:
        return isinstance(value, str | bool | list) or (
            isinstance(value, float) and math.isnan(value)
        )
    if kind in (int, bool):
        return type(value) is not kind
    return value not in choices_of(name)


# ---------------------------------------------------------------- out of range


def below_or_above(name: str) -> st.SearchStrategy[Any]:
    """A value outside a bounded hyperparameter's limits."""
    low, high, open_high = BOUNDS[name]
    if TYPES[name] is int:
        return st.integers(-(10**6), int(low) - 1) | st.integers(int(high) + 1, 2**40)
    above = st.just(high) if open_high else st.floats(high, 1e6, exclude_min=True)
    return st.floats(-1e6, low, exclude_max=True) | above


def bounds(study: StudyFile) -> list[Candidate]:
    """Bounded hyperparameters past their limits: fixed, as range ends, or as a choice."""
    if study.kind == "user":
        return []
    found = [
        Candidate(("training", name), below_or_above(name), (f"training.{name}",))
        for name in BOUNDS
        if name in OBJECTIVE_PARAMS[study.kind]
    ]
    for name, rng in study.table.get("search", {}).items():
        if name in BOUNDS:
            found += range_bounds(name, rng)
    return found


def range_bounds(name: str, rng: Table) -> list[Candidate]:
    """One searched hyperparameter past its limits."""
    where = ("search", name)
    if "choices" in rng:
        values = appended(rng["choices"], below_or_above(name))
        return [Candidate((*where, "choices"), values, (f"search.{name}",))]
    return [
        Candidate((*where, end), below_or_above(name), (f"search.{name}",))
        for end in ("low", "high")
    ]


COUNTS = (
    ("keep_weights",),
    ("max_failures",),
    ("data", "train_size"),
    ("data", "valid_size"),
    ("training", "max_epochs"),
    ("training", "patience"),
    ("model", "convs_per_block"),
    ("model", "stem_stride"),
    ("sampler", "trials_per_round"),
    ("sampler", "min_keep"),
    ("sampler", "min_complete"),
    ("objective", "max_epochs"),
)
LIMITS: dict[KeyPath, st.SearchStrategy[Any]] = {
    ("seed",): st.integers(-(10**6), -1),
    ("sampler", "drop_after"): st.integers(-(10**6), -1),
    ("sampler", "rounds"): st.integers(-(10**6), -1),
    ("sampler", "keep"): st.floats(-1.0, 0.0) | st.floats(1.0, 10.0, exclude_min=True),
    ("sampler", "margin"): st.floats(-1.0, 0.0, exclude_max=True)
    | st.floats(1.0, 10.0, exclude_min=True),
    ("sampler", "min_width"): st.floats(-1.0, 0.0, exclude_max=True)
    | st.floats(1.0, 10.0, exclude_min=True),
    ("sampler", "wait_timeout"): st.floats(-1e6, 0.0),
    ("data", "valid_fraction"): st.floats(-1.0, 0.0) | st.floats(1.0, 10.0),
    ("data", "test_fraction"): st.floats(-1.0, 0.0, exclude_max=True) | st.floats(1.0, 10.0),
    ("data", "image_size"): st.integers(-(10**6), 7) | st.integers(1025, 10**6),
    ("sampler", "n_startup_trials"): st.integers(-(10**6), -1),
    # Settings Optuna's pruners refuse when `run` builds them (or with which every trial fails).
    ("pruner", "n_startup_trials"): st.integers(-(10**6), -1),
    ("pruner", "n_warmup_steps"): st.integers(-(10**6), -1),
    ("pruner", "min_resource"): st.integers(-(10**6), 0),
    ("pruner", "reduction_factor"): st.integers(-(10**6), 1),
}
LIMIT_NAMES: dict[KeyPath, tuple[str, ...]] = {
    ("data", "valid_fraction"): ("data.valid_fraction", "data.test_fraction")
}


def limits(study: StudyFile) -> list[Candidate]:
    """Counts below 1, seeds below 0, fractions and narrowing settings out of their ranges."""
    allowed = set(key_paths(study))
    found = [
        Candidate(path, st.integers(-(10**6), 0), (dotted(path),))
        for path in COUNTS
        if path in allowed
    ]
    for path, values in LIMITS.items():
        if path in allowed:
            found.append(Candidate(path, values, LIMIT_NAMES.get(path, (dotted(path),))))
    found += [
        Candidate(p, st.integers(-(10**6), 0).map(lambda v: [v]), (dotted(p),))
        for p in [("model", "hidden"), ("model", "channels")]
        if p in allowed
    ]
    return found


def bad_words(study: StudyFile) -> list[Candidate]:
    """A string setting outside its choices, a blank name, a blank metric or "epoch" (the name
    ctx.report gives the epoch number), an entry without ':'."""
    found = []
    for path in key_paths(study):
        allowed = literal_values(hint(study, path))
        if allowed:
            found.append(Candidate(path, words_outside(allowed), (dotted(path),)))
    blank = st.sampled_from(["", " ", "\t", "   "])
    found.append(Candidate(("name",), blank, ("name",)))
    if study.kind == "user":
        found.append(Candidate(("objective", "metric"), blank, ("objective.metric",)))
        found.append(Candidate(("objective", "metric"), st.just("epoch"), ("objective.metric",)))
        for key in ("entry", "test"):
            entries = st.sampled_from(["objective.py", "a:b:c", ":objective", "objective.py:", ":"])
            found.append(Candidate(("objective", key), entries, (f"objective.{key}",)))
    return found


def words_outside(allowed: list[Any]) -> st.SearchStrategy[str]:
    """Strings that are none of the allowed values."""
    return st.text(max_size=8).filter(lambda word: word not in allowed)


def bad_ranges(study: StudyFile) -> list[Candidate]:
    """Steps ≤ 0, a log scale with a step or a low ≤ 0, empty or repeated choices, misused grow."""
    found = []
    for name, rng in study.table.get("search", {}).items():
        where = ("search", name)
        if "choices" in rng:
            found.append(Candidate((*where, "choices"), st.just([]), (f"search.{name}.choices",)))
            if study.kind == "user":
                twice = appended(rng["choices"], st.sampled_from(rng["choices"]))
                found.append(Candidate((*where, "choices"), twice, (f"search.{name}.choices",)))
            if study.kind != "user" and TYPES[name] is not float and TYPES[name] is not int:
                found.append(Candidate(where, st.just({"low": 0, "high": 1}), (f"search.{name}",)))
            continue
        found += range_rules(study, name, rng)
    return found


def range_rules(study: StudyFile, name: str, rng: Table) -> list[Candidate]:
    """What can break one numeric range on its own."""
    where = ("search", name)
    integer = isinstance(rng["low"], int) and isinstance(rng["high"], int)
    found = []
    if "step" in rng:
        steps = st.integers(-100, 0) if integer else st.floats(-100.0, 0.0)
        found.append(Candidate((*where, "step"), steps, (f"search.{name}.step",)))
    if rng.get("log"):
        found.append(
            Candidate((*where, "step"), st.just(2 if integer else 0.5), (f"search.{name}",))
        )
        lows = st.integers(-100, 0) if integer else st.floats(-100.0, 0.0)
        found.append(Candidate((*where, "low"), lows, (f"search.{name}",)))
    grow = st.sampled_from(["low", "high", "both"])
    if study.kind == "user" or sampler_kind(study) != "narrowing":
        found.append(Candidate((*where, "grow"), grow, (f"search.{name}.grow",)))
    return found


def out_of_range(study: StudyFile) -> list[Candidate]:
    """Every out-of-range value this file can be given."""
    return bounds(study) + limits(study) + bad_words(study) + bad_ranges(study)


# ---------------------------------------------------------------- NaN, inf and huge numbers

NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def non_finite(study: StudyFile) -> list[Candidate]:
    """NaN, inf or -inf for every float key, and where an integer belongs."""
    found = []
    for path in key_paths(study):
        kind = category(hint(study, path))
        if kind in ("int", "float", "number"):
            names = (dotted(path), dotted(path[:2]))
            found.append(Candidate(path, NON_FINITE, names))
    return found


HUGE_INT = Raw("1" + "0" * 400)  # an integer no float can hold
HUGE_FLOAT = st.sampled_from([Raw("1e400"), Raw("-1e400")])  # TOML reads them as ±inf


def huge_numbers(study: StudyFile) -> list[Candidate]:
    """Numbers too big for any key's limits, or for a float at all."""
    found = []
    for path in key_paths(study):
        kind = category(hint(study, path))
        name = path[1] if path[0] in ("training", "search") else ""
        names = (dotted(path), dotted(path[:2]))
        if kind == "float":
            found.append(Candidate(path, st.just(HUGE_INT), (dotted(path),)))
        if kind == "number" and path[-1] in ("low", "high"):  # a user's range: float or integer
            found.append(Candidate(path, st.just(HUGE_INT), names, huge_int_label(study, path)))
        if kind in ("float", "number"):
            found.append(Candidate(path, HUGE_FLOAT, names))
        if name == "batch_size" and path[-1] in ("batch_size", "low", "high"):
            found.append(Candidate(path, st.just(Raw("1" + "0" * 30)), (dotted(path[:2]),)))
    if ("data", "image_size") in key_paths(study):
        huge = st.sampled_from([10**12, 2**63 - 1])
        found.append(Candidate(("data", "image_size"), huge, ("data.image_size",)))
    return found


def huge_int_label(study: StudyFile, path: KeyPath) -> str:
    """The open bug an integer past a float at one end of a user's range runs into, if any."""
    rng = get(study.table, path[:2])
    others = [rng[k] for k in ("low", "high", "step") if k in rng and k != path[-1]]
    whole = any(isinstance(v, float) and v.is_integer() for v in others)
    return HUGE_BESIDE_WHOLE_FLOAT if whole else ""


# ---------------------------------------------------------------- inverted bounds


def inverted(study: StudyFile) -> list[Candidate]:
    """A range with low above high; a threshold pruner with lower above upper."""
    found = []
    for name, rng in study.table.get("search", {}).items():
        if "low" in rng:
            found.append(Candidate(("search", name), st.just(swapped(rng)), (f"search.{name}",)))
    if pruner_kind(study) == "threshold":
        both = {"kind": "threshold", "lower": 1.0, "upper": 0.0}
        found.append(Candidate(("pruner",), st.just(both), ("pruner",)))
    return found


def swapped(rng: Table) -> Table:
    """The range with low > high (its ends swapped, or high lowered when they are equal)."""
    low, high = rng["low"], rng["high"]
    if low == high:
        high = low - 1 if isinstance(low, int) else low - abs(low) / 2 - 1.0
    return {**rng, "low": max(low, high), "high": min(low, high)}


# ---------------------------------------------------------------- unknown and misplaced keys

UNKNOWN = st.one_of(
    st.sampled_from(["serach", "Seed", "lr", "path", "text", "kind2", "low_", "extra"]),
    IDENTIFIERS,
    st.text(st.characters(categories=["L", "N", "P", "Zs"]), min_size=1, max_size=8),
)


def known(study: StudyFile, level: KeyPath) -> frozenset[str]:
    """The keys a table at level may hold under any kind."""
    if level == ():
        return frozenset(f.name for f in dataclasses.fields(StudySpec)) - {"path", "text"}
    if level == ("search",):
        return frozenset(TUNABLE)
    if level[0] == "search":
        return RANGE_KEYS
    return frozenset(f.name for f in dataclasses.fields(SECTIONS[level[0]]))


def unknown_levels(study: StudyFile) -> list[KeyPath]:
    """The top, each section, [search] (of a built-in model) and each range."""
    levels: list[KeyPath] = [(), *((s,) for s in study.table if isinstance(study.table[s], dict))]
    levels += [("search", name) for name in study.table.get("search", {})]
    if study.kind == "user" and ("search",) in levels:
        levels.remove(("search",))  # any identifier names a user's parameter
    return levels


@st.composite
def unknown_key(draw: st.DrawFn, study: StudyFile) -> Invalid:
    """The file with one unknown key added somewhere."""
    level = draw(st.sampled_from(unknown_levels(study)))
    taken = known(study, level)
    key = draw(UNKNOWN.filter(lambda k: k not in taken))
    value = draw(
        st.one_of(st.integers(0, 9), st.booleans(), st.text(max_size=3), st.just({"a": 1}))
    )
    table = put(study.table, (*level, key), value)
    path = dotted((*level, key))
    return broken("unknown key", study, table, f"{path} = {value_text(value)}", (path,))


def misplaced(study: StudyFile) -> list[Candidate]:
    """A key or section of another kind: another sampler's, pruner's, data set's or objective's."""
    found = other_kinds("sampler", SAMPLER_KEYS, sampler_kind(study), SamplerSpec())
    found += other_kinds("pruner", PRUNER_KEYS, pruner_kind(study), PrunerSpec())
    return found + (misplaced_user(study) if study.kind == "user" else misplaced_builtin(study))


def other_kinds(
    section: str, by_kind: dict[str, frozenset[str]], kind: str, defaults: Any
) -> list[Candidate]:
    """Each key another kind of this section takes, at its default (a likely typo even so)."""
    found = []
    for key in sorted(frozenset().union(*by_kind.values()) - by_kind[kind]):
        value = getattr(defaults, key)
        value = 0.5 if value is None else list(value) if isinstance(value, tuple) else value
        found.append(Candidate((section, key), st.just(value), (f"{section}.{key}",)))
    return found


def misplaced_builtin(study: StudyFile) -> list[Candidate]:
    """Data and model keys of the other data sets, and hyperparameters this model has not."""
    found = other_kinds("data", DATA_KEYS, study.kind, DataSpec())
    found += other_kinds("model", MODEL_KEYS, study.kind, ModelSpec())
    for name in sorted(set(TUNABLE) - OBJECTIVE_PARAMS[study.kind]):
        found.append(Candidate(("search", name), st.just(a_range(name)), (f"search.{name}",)))
    found.append(
        Candidate(("search", "max_epochs"), st.just({"low": 1, "high": 2}), ("search.max_epochs",))
    )
    return found


def a_range(name: str) -> Table:
    """A valid range of a built-in hyperparameter."""
    if TYPES[name] is float:
        return {"low": 0.0, "high": 0.5}
    if TYPES[name] is int:
        return {"low": 8, "high": 16}
    return {"choices": choices_of(name)}


def with_a_range(study: StudyFile) -> StudyFile:
    """The study, with a numeric range searched when it has none (and a name is free)."""
    search = study.table.get("search", {})
    if any("low" in rng for rng in search.values()):
        return study
    if study.kind == "user":
        free = [n for n in ("x", "x2", "x3") if n not in search]
    else:
        free = [n for n in ("lr", "weight_decay", "l1", "mixup") if n not in search]
    if not free:
        return study
    rng = {"low": 0.0, "high": 1.0} if study.kind == "user" else {"low": 1e-3, "high": 1e-2}
    return dataclasses.replace(study, table=put(study.table, ("search", free[0]), rng))


def misplaced_user(study: StudyFile) -> list[Candidate]:
    """A built-in model's section beside [objective]; a parameter name that is no identifier."""
    sections = {
        "data": {"train_size": 300},
        "model": {"hidden": [8]},
        "training": {"max_epochs": 1},
    }
    found = [Candidate((s,), st.just(table), (f"[{s}]",)) for s, table in sections.items()]
    for name in ("1x", "a-b", "a b", "x.y", ""):
        found.append(
            Candidate(("search", name), st.just({"low": 0.0, "high": 1.0}), (f"search.{name}",))
        )
    return found


def missing(study: StudyFile) -> list[Candidate]:
    """A required key left out: the metric, direction or entry, a range's end, a threshold's
    bounds."""
    found = []
    if study.kind == "user":
        found += [Candidate(("objective", k), st.just(DROP), (k,)) for k in ("metric", "direction")]
        # create and run name the entry; a worker, which joins a study, finds none to join first.
        names = ("objective.entry", "no SQLite file")
        found.append(Candidate(("objective", "entry"), st.just(DROP), names))
    if study.kind == "imagefolder":
        found.append(Candidate(("data", "folder"), st.just(DROP), ("data.folder",)))
    for name, rng in study.table.get("search", {}).items():
        for end in ("low", "high") if "low" in rng else ():
            found.append(Candidate(("search", name, end), st.just(DROP), (f"search.{name}",)))
    if pruner_kind(study) == "threshold":
        found.append(Candidate(("pruner",), st.just({"kind": "threshold"}), ("pruner",)))
    return found


# ---------------------------------------------------------------- `when`


def with_a_parameter(study: StudyFile) -> StudyFile:
    """The study, with a searched parameter added when it has none."""
    if study.table.get("search"):
        return study
    rng = {"choices": [True, False]} if study.kind != "user" else {"low": 0.0, "high": 1.0}
    name = "batch_norm" if study.kind != "user" else "x"
    return dataclasses.replace(study, table=put(study.table, ("search", name), rng))


@st.composite
def bad_when(draw: st.DrawFn, study: StudyFile) -> Invalid:
    """A `when` naming an unknown, non-choice or later parameter, or a value not among choices."""
    study = with_a_parameter(study)
    order = study.search_order
    name = draw(st.sampled_from(order))
    options = when_options(study, name)
    change = draw(st.sampled_from(sorted(options)))
    when = draw(options[change])
    table = put(study.table, ("search", name, "when"), when)
    where = f"search.{name}.when"
    return broken("bad when", study, table, f"{where} = {value_text(when)} ({change})", (where,))


def when_options(study: StudyFile, name: str) -> dict[str, st.SearchStrategy[Any]]:
    """Every bad `when` for one parameter, by what is wrong with it."""
    search, order = study.table["search"], study.search_order
    earlier, later = order[: order.index(name)], order[order.index(name) + 1 :]
    others = IDENTIFIERS.filter(lambda k: k not in search)
    options = {
        "unknown name": others.map(lambda k: {k: True}),
        "names itself": st.just({name: True}),
        "not a table": st.sampled_from([True, 3, "batch_norm", [1]]),
        "empty": st.just({}),
    }
    ranges = [n for n in earlier if "choices" not in search[n]]
    if ranges:
        options["not a choice"] = st.sampled_from(ranges).map(lambda n: {n: search[n]["low"]})
    if later:
        options["declared later"] = st.sampled_from(later).map(
            lambda n: {n: first_value(search[n])}
        )
    choices = [n for n in earlier if "choices" in search[n]]
    if choices:
        options["not among choices"] = st.sampled_from(choices).flatmap(
            lambda n: not_among(n, search[n])
        )
    return options


def first_value(rng: Table) -> Any:
    """A value the parameter can take."""
    return rng["choices"][0] if "choices" in rng else rng["low"]


def not_among(name: str, rng: Table) -> st.SearchStrategy[Table]:
    """A `when` on name with a value that is not one of its choices (or of another type)."""
    choices = rng["choices"]
    values = st.one_of(
        st.text(max_size=4), st.integers(), st.floats(allow_nan=False), st.booleans()
    )
    bad = values.filter(lambda v: not (v in choices and type(v) is type(choices[0])))
    return st.one_of(bad, bad.map(lambda v: [choices[0], v])).map(lambda v: {name: v})


# ---------------------------------------------------------------- below TOML: text and bytes


@st.composite
def duplicate_key(draw: st.DrawFn, study: StudyFile) -> Invalid:
    """A key written twice: a line repeated, a [section] declared twice, an inline key twice."""
    lines = study.text.split("\n")[:-1]
    pairs = [i for i, line in enumerate(lines) if re.match(r"\S.* = ", line)]
    headers = [line for line in lines if line.startswith("[")]
    how = draw(st.sampled_from(["line", "section", "inline"] if headers else ["line"]))
    if how == "line":
        i = draw(st.sampled_from(pairs))
        lines.insert(i + 1, lines[i])
        number = i + 2
    elif how == "section":
        lines += ["", draw(st.sampled_from(headers))]
        number = len(lines)
    else:
        lines, number = inline_twice(draw, study)
    files = {**study.files(), STUDY_FILE: ("\n".join(lines) + "\n").encode()}
    return Invalid("duplicate key", f"{how} twice at line {number}", files, (f"line {number}",))


def inline_twice(draw: st.DrawFn, study: StudyFile) -> tuple[list[str], int]:
    """The text with one inline table's first key written twice, and that line's number."""
    study = with_a_parameter(study)
    name = draw(st.sampled_from(study.search_order))
    rng = study.table["search"][name]
    first = next(iter(rng))
    text = (
        "{ "
        + ", ".join(
            f"{key_text(k)} = {value_text(v)}" for k, v in [(first, rng[first]), *rng.items()]
        )
        + " }"
    )
    lines = toml_text(put(study.table, ("search", name), Raw(text))).split("\n")[:-1]
    return lines, 1 + next(i for i, line in enumerate(lines) if line.endswith(text))


@st.composite
def not_utf8(draw: st.DrawFn, study: StudyFile) -> Invalid:
    """Bytes that are not UTF-8: a stray byte, Latin-1 text, or UTF-16."""
    text = toml_text({**study.table, "description": "café, naïve"})
    how = draw(st.sampled_from(["stray byte", "latin-1", "utf-16"]))
    if how == "stray byte":
        data = text.encode()
        at = draw(st.integers(0, len(data)))
        stray = draw(st.sampled_from([b"\xff", b"\xfe", b"\x80", b"\xc3(", b"\xed\xa0\x80"]))
        data = data[:at] + stray + data[at:]
    else:
        data = (
            text.encode("latin-1", errors="replace") if how == "latin-1" else text.encode("utf-16")
        )
    return Invalid("not UTF-8", how, {**study.files(), STUDY_FILE: data}, ("UTF-8",))


# ---------------------------------------------------------------- entries that cannot be imported

BAD_CODE = {
    "syntax error": "def objective(params, ctx:\n    return 1.0\n",
    "import fails": "import no_such_package_hpsearch_test\n",
    "raises on import": "raise RuntimeError('not today')\n",
    "not callable": "objective = 3\ntest = 3\n",
    "wrong arity": "def objective(params):\n    return 1.0\n\n\ndef test(params):\n    return {}\n",
    "no such function": "def other(params, ctx):\n    return 1.0\n",
}


@st.composite
def bad_entry(draw: st.DrawFn, study: StudyFile) -> Invalid:
    """An [objective] entry or test that names no file, no module or no usable function."""
    key = draw(st.sampled_from(["entry", "test"]))
    how = draw(st.sampled_from(["missing file", "missing module", "missing function", *BAD_CODE]))
    files = study.files()
    entry = f"broken_entry.py:{'objective' if key == 'entry' else 'test'}"
    if how == "missing file":
        entry = "missing_file.py:objective"
    elif how == "missing module":
        entry = "no_such_module_hpsearch_test:objective"
    elif how == "missing function":
        entry = f"{study.module}:no_such_function"
    else:
        files["broken_entry.py"] = BAD_CODE[how].encode()
    table = put(study.table, ("objective", key), entry)
    files[STUDY_FILE] = toml_text(table).encode()
    return Invalid(
        "bad entry", f"objective.{key} = {entry!r} ({how})", files, (f"objective.{key}",)
    )


# ---------------------------------------------------------------- dates in a user's config

DATES = st.one_of(
    st.dates(),
    st.times(),  # TOML's local time: no offset
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
)


@st.composite
def date_in_config(draw: st.DrawFn, study: StudyFile) -> Invalid:
    """A TOML date or time in [objective.config]: at a new key, in a list, or in a table."""
    config = get(study.table, ("objective", "config")) or {}
    key = draw(IDENTIFIERS.filter(lambda k: k not in config))
    date = draw(DATES)
    how = draw(st.sampled_from(["key", "list", "table"]))
    if how == "key":
        value, where = date, key
    elif how == "list":
        before = draw(st.lists(st.integers(0, 9) | st.text(max_size=3), max_size=2))
        value, where = [*before, date], f"{key}[{len(before)}]"
    else:
        inner = draw(IDENTIFIERS)
        value, where = {inner: date}, f"{key}.{inner}"
    table = put(study.table, ("objective", "config", key), value)
    change = f"objective.config.{key} = {value_text(value)}"
    return broken("date in config", study, table, change, (f"objective.config.{where}",))


# ---------------------------------------------------------------- models that cannot train


@st.composite
def cannot_train(draw: st.DrawFn, study: StudyFile) -> Invalid:
    """Batches of one example with BatchNorm on; a CNN deeper than its images, or no block."""
    hows = ["one example per batch"] + (["too deep"] if study.kind != "mnist" else [])
    if draw(st.sampled_from(hows)) == "too deep":
        deepest = max_blocks(study.table["data"], study.table.get("model", {}))
        deeper = st.lists(st.integers(2, 8), min_size=deepest + 1, max_size=deepest + 3)
        channels = draw(deeper | st.just([]))
        table = put(study.table, ("model", "channels"), channels)
        change = f"model.channels = {value_text(channels)} ({deepest} blocks at most)"
        return broken("cannot train", study, table, change, ("model.channels",))
    table, name = one_example_batches(study)
    change = f"{name} can be 1 while batch_norm can be true"
    return broken("cannot train", study, table, change, (name,))


def one_example_batches(study: StudyFile) -> tuple[Table, str]:
    """The file with a batch size that can be 1 and batch_norm that can be true; the name of
    the batch size's key."""
    search = study.table.get("search", {})
    table = study.table
    if "batch_size" in search:  # its range starts at 1, or 1 joins its choices
        rng = search["batch_size"]
        if "choices" not in rng:
            rng = {**rng, "low": 1}
        elif 1 not in rng["choices"]:
            rng = {**rng, "choices": [*rng["choices"], 1]}
        table, name = put(table, ("search", "batch_size"), rng), "search.batch_size"
    else:
        table, name = put(table, ("training", "batch_size"), 1), "training.batch_size"
    if "batch_norm" in search:  # `when` may name batch_norm: keep its choices, add true
        choices = search["batch_norm"]["choices"]
        choices = choices if True in choices else [*choices, True]
        table = put(table, ("search", "batch_norm", "choices"), choices)
    else:
        table = put(table, ("training", "batch_norm"), True)
    return table, name


# ---------------------------------------------------------------- all of them

Mutation = Callable[[StudyFile], st.SearchStrategy[Invalid]]
BUILTIN: tuple[Kind, ...] = ("mnist", "flowers", "imagefolder")


def by_candidates(
    kind: str,
    find: Callable[[StudyFile], list[Candidate]],
    prepare: Callable[[StudyFile], StudyFile] = lambda study: study,
) -> Mutation:
    """A mutation that draws from the candidates `find` lists for a (prepared) file."""

    @st.composite
    def mutate(draw: st.DrawFn, study: StudyFile) -> Invalid:
        """Break the file by one of its candidates."""
        study = prepare(study)
        return from_candidates(draw, kind, study, find(study))

    return mutate


# Each mutation, and the objectives whose files it can break.
MUTATIONS: dict[str, tuple[Mutation, tuple[Kind, ...]]] = {
    "wrong type": (by_candidates("wrong type", wrong_types), KINDS),
    "out of range": (by_candidates("out of range", out_of_range), KINDS),
    "nan or inf": (by_candidates("nan or inf", non_finite), KINDS),
    "huge number": (by_candidates("huge number", huge_numbers), KINDS),
    "inverted bounds": (by_candidates("inverted bounds", inverted, with_a_range), KINDS),
    "unknown key": (unknown_key, KINDS),
    "key of another kind": (by_candidates("key of another kind", misplaced), KINDS),
    "missing key": (by_candidates("missing key", missing, with_a_range), KINDS),
    "bad when": (bad_when, KINDS),
    "duplicate key": (duplicate_key, KINDS),
    "not UTF-8": (not_utf8, KINDS),
    "bad entry": (bad_entry, ("user",)),
    "date in config": (date_in_config, ("user",)),
    "cannot train": (cannot_train, BUILTIN),
}


@st.composite
def invalid_files(draw: st.DrawFn, mutation: str | None = None) -> Invalid:
    """A valid file broken by one mutation (of the kind named, or any)."""
    mutate, kinds = MUTATIONS[mutation or draw(st.sampled_from(sorted(MUTATIONS)))]
    return draw(mutate(draw(study_files(kinds))))
