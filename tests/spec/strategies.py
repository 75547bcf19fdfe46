"""Hypothesis strategies for valid study files, across the whole format (docs/study-files.md).

`study_files()` draws the built-in MNIST and image-folder objectives on the small committed test
data (tests/data), and a user's own `[objective] entry`, with every parameter kind, `when` on one
or several choice parameters, and every sampler and pruner kind with their settings.

The files are meant to run: one epoch on a few hundred images, and training settings drawn from
ranges that cannot make a trial fail (a learning rate of 10 diverges: that the limits themselves
are refused is tests/spec/test_invalid_files.py's business). Only valid files are drawn: a batch
size of 1 only where batch_norm cannot be true, a CNN only as deep as its images allow. Valid
files that hpsearch once mishandled (a tiny mixup, no test split, four blocks on 8 pixels) are
drawn again; tests/spec/test_found_bugs.py keeps their reproductions. A valid file found to
break hpsearch is left out until its fix, with its reproduction there (none is left out today).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from hypothesis import strategies as st
from toml_text import Table, toml_text

from hpsearch.spec import OBJECTIVE_PARAMS, TUNABLE, TrainingSpec
from repo import TEST_DATA

Kind = Literal["mnist", "flowers", "imagefolder", "user"]
KINDS: tuple[Kind, ...] = ("mnist", "flowers", "imagefolder", "user")
STUDY_FILE = "study.toml"

# The built-in hyperparameters' types, and ranges inside their limits in which training is sane.
TYPES: dict[str, Any] = get_type_hints(TrainingSpec)
SAFE: dict[str, tuple[float, float]] = {
    "lr": (1e-4, 0.05),
    "momentum": (0.0, 0.95),
    "weight_decay": (0.0, 0.1),
    "l1": (0.0, 1e-3),
    "batch_size": (1, 128),  # 1 only where batch_norm cannot be true (see one_example)
    "dropout": (0.0, 0.8),
    "noise_std": (0.0, 1.0),
    "mixup": (0.0, 2.0),
}
# `grow` may take a range out to the hard limit; these still train there (lr = 10 diverges).
GROWABLE = frozenset({"momentum", "weight_decay", "l1", "dropout", "noise_std", "mixup"})

OBJECTIVE_CODE = '''\
"""A user's objective beside a generated study file: a value in (0, 1) from the params."""

import math

import torch


def score(params):
    """A finite number for any parameters, strings and huge integers included."""
    total = 0.0
    for value in params.values():
        number = float(len(value)) if isinstance(value, str) else float(value)
        total += math.atan(number)
    return 0.5 + 0.3 * math.tanh(total)


def objective(params, ctx):
    """Report the score each epoch, keep a weight, return the score."""
    value = score(params)
    for epoch in range(1, ctx.max_epochs + 1):
        ctx.report(epoch, **{ctx.metric: value})
    ctx.save_weights({"w": torch.tensor([value])})
    return value


def test(params, ctx, weights):
    """Evaluate the selected trial: its kept weight."""
    return {"kept": float(weights["w"][0])}
'''


@dataclass(frozen=True)
class StudyFile:
    """A generated study file: its table, which objective it runs, and its objective's module."""

    table: Table
    kind: Kind
    module: str = ""  # a user objective's file, written beside the study file

    @property
    def text(self) -> str:
        """The study file's TOML text."""
        return toml_text(self.table)

    def files(self) -> dict[str, bytes]:
        """Every file to write into the study's folder, by name."""
        files = {STUDY_FILE: self.text.encode()}
        if self.module:
            files[self.module] = OBJECTIVE_CODE.encode()
        return files

    @property
    def search_order(self) -> list[str]:
        """The searched names in the order they are suggested (when may name only earlier ones)."""
        search = self.table.get("search", {})
        return list(search) if self.kind == "user" else [n for n in TUNABLE if n in search]


def write_files(folder: Path, files: dict[str, bytes]) -> Path:
    """Write the files into folder; the study file's path."""
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder / STUDY_FILE


def study_files(kinds: tuple[Kind, ...] = KINDS) -> st.SearchStrategy[StudyFile]:
    """Valid study files of the given objective kinds."""
    return st.one_of(*(user_files() if k == "user" else builtin_files(k) for k in kinds))


# ---------------------------------------------------------------- whole files


@st.composite
def builtin_files(draw: st.DrawFn, kind: Kind) -> StudyFile:
    """A study of a built-in model: [data], [model], [training], [search], sampler, pruner."""
    sampler = draw(samplers())
    data = draw(DATA[kind])
    model = draw(optional_keys(MODEL[kind]))
    if "channels" in model:
        model["channels"] = model["channels"][: max_blocks(data, model)]
    fixed = draw(training(kind))
    search = draw(builtin_search(kind, sampler.get("kind") == "narrowing", fixed))
    if "batch_norm" not in search and one_example(fixed, search):
        fixed["batch_norm"] = False
    sections = {
        "data": data,
        "model": model,
        "training": fixed,
        "search": search,
        "sampler": sampler,
        "pruner": draw(pruners()),
    }
    return StudyFile({**draw(top_level()), **draw(in_any_order(sections))}, kind)


def max_blocks(data: Table, model: Table) -> int:
    """The most CNN blocks the images allow: a padded 3x3 stem (stride stem_stride), then each
    block but the last halves the image with a 2x2 max-pool, which needs 2 pixels."""
    side = (data.get("image_size", 64) - 1) // model.get("stem_stride", 1) + 1
    blocks = 1
    while side >= 2:
        side //= 2
        blocks += 1
    return blocks


@st.composite
def user_files(draw: st.DrawFn) -> StudyFile:
    """A study of a user's objective: [objective] (with config), [search], sampler, pruner."""
    module = draw(st.sampled_from(["objective.py", "my_model.py", "net_2.py"]))
    sections = {
        "objective": draw(objective_table(module)),
        "search": draw(user_search()),
        "sampler": draw(samplers()),
        "pruner": draw(pruners()),
    }
    return StudyFile({**draw(top_level()), **draw(in_any_order(sections))}, "user", module)


@st.composite
def in_any_order(draw: st.DrawFn, sections: Table) -> Table:
    """The non-empty sections, in a drawn order (an empty one is left out: all defaults)."""
    names = draw(st.permutations([name for name, value in sections.items() if value]))
    return {name: sections[name] for name in names}


@st.composite
def optional_keys(draw: st.DrawFn, keys: dict[str, st.SearchStrategy[Any]]) -> Table:
    """Each key written or left at its default."""
    return {key: draw(values) for key, values in keys.items() if draw(st.booleans())}


NAMES = st.text(
    st.characters(categories=["L", "N"], include_characters=" _-."), min_size=1, max_size=12
).filter(str.strip)


def top_level() -> st.SearchStrategy[Table]:
    """description, seed, name, keep_weights and max_failures."""
    return optional_keys(
        {
            "description": st.text(max_size=30),
            "seed": st.integers(0, 2**64),
            "name": NAMES,
            "keep_weights": st.integers(1, 10),
            "max_failures": st.integers(1, 10),
        }
    )


# ---------------------------------------------------------------- the built-in models


def _fraction() -> st.SearchStrategy[float]:
    """A split fraction."""
    return st.floats(0.1, 0.3)


def _folder_data(dataset: str, folders: st.SearchStrategy[str]) -> st.SearchStrategy[Table]:
    """[data] of an image-folder data set, on the committed flowers subset.

    test_fraction may be 0: no test split, and `report` evaluates no test set.
    """
    required = {"dataset": st.just(dataset), "image_size": st.sampled_from([8, 12, 16])}
    optional = {
        "split_seed": st.integers(0, 2**31),
        "valid_fraction": _fraction(),
        "test_fraction": st.just(0.0) | _fraction(),
    }
    return st.fixed_dictionaries(required, optional={**optional, "folder": folders})


FLOWERS = str(TEST_DATA / "flowers")
DATA: dict[str, st.SearchStrategy[Table]] = {
    "mnist": st.fixed_dictionaries(
        {"train_size": st.integers(200, 400), "valid_size": st.integers(50, 150)},
        optional={"dataset": st.just("mnist"), "split_seed": st.integers(0, 2**31)},
    ),
    "flowers": _folder_data("flowers", st.sampled_from(["flowers", FLOWERS])),
    "imagefolder": _folder_data("imagefolder", st.sampled_from(["flowers", FLOWERS])).map(
        lambda data: {"folder": "flowers", **data}
    ),
}
CNN: dict[str, st.SearchStrategy[Any]] = {
    "channels": st.lists(st.integers(2, 8), min_size=1, max_size=5),  # cut by cnn_model
    "convs_per_block": st.integers(1, 2),
    "flip_average": st.booleans(),
    "residual": st.booleans(),
    "stem_stride": st.integers(1, 2),
}
MODEL: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "mnist": {
        "hidden": st.lists(st.integers(4, 16), min_size=1, max_size=2),
        "negative_slope": st.floats(0.0, 0.5),
    },
    "flowers": CNN,
    "imagefolder": CNN,
}


@st.composite
def training(draw: st.DrawFn, kind: Kind) -> Table:
    """[training]: one epoch, and any of the other settings this objective uses."""
    used = OBJECTIVE_PARAMS[kind] | {"patience", "early_stopping", "metric"}
    keys = {name: fixed_value(name) for name in TYPES if name in used}
    return {"max_epochs": 1, **draw(optional_keys(keys))}


def fixed_value(name: str) -> st.SearchStrategy[Any]:
    """A value of one [training] setting."""
    if name == "patience":
        return st.integers(1, 3)
    if name in SAFE:
        low, high = SAFE[name]
        return st.integers(int(low), int(high)) if TYPES[name] is int else safe_floats(name)
    return st.sampled_from(choices_of(name))


def safe_floats(name: str) -> st.SearchStrategy[float]:
    """Values of a float hyperparameter inside its safe range.

    A mixup may be tiny, subnormal even (below float32's smallest normal number it once failed
    every trial: test_found_bugs.py).
    """
    low, high = SAFE[name]
    if name == "mixup":
        return st.just(0.0) | st.floats(0.0, 1e-300) | st.floats(1e-3, high)
    return st.floats(low, high)


def choices_of(name: str) -> list[Any]:
    """Every value of a string or boolean setting."""
    kind = TYPES[name]
    return [True, False] if kind is bool else list(get_args(kind))


@st.composite
def builtin_search(draw: st.DrawFn, kind: Kind, narrowing: bool, fixed: Table) -> Table:
    """[search] over some of this objective's hyperparameters, written in any order.

    batch_norm is searched only among [false] where the batch size can be 1 (batch_size comes
    first in suggestion order).
    """
    names = draw(st.lists(st.sampled_from(sorted(OBJECTIVE_PARAMS[kind])), unique=True, max_size=6))
    search: Table = {}
    for name in [n for n in TUNABLE if n in names]:  # suggestion order: `when` looks back
        if name == "batch_norm" and one_example(fixed, search):
            rng: Table = {"choices": [False]}
        else:
            rng = draw(builtin_range(name, narrowing))
        search[name] = {**rng, **draw(whens(search))}
    return {name: search[name] for name in draw(st.permutations(list(search)))}


def one_example(fixed: Table, search: Table) -> bool:
    """Whether the batch size can be 1 (fixed, a choice, or a range's low), with which BatchNorm
    cannot train: batch_norm must then stay false."""
    rng = search.get("batch_size")
    if rng is None:
        return bool(fixed.get("batch_size") == 1)
    return bool(rng.get("low") == 1 or 1 in rng.get("choices", []))


def builtin_range(name: str, narrowing: bool) -> st.SearchStrategy[Table]:
    """A built-in hyperparameter's range: numeric or choices for numbers, choices otherwise."""
    if name not in SAFE:
        values = choices_of(name)
        return st.lists(st.sampled_from(values), min_size=1, unique=True).map(_choices)
    low, high = SAFE[name]
    grow = narrowing and name in GROWABLE
    if TYPES[name] is int:
        ints = st.integers(int(low), int(high))
        return st.one_of(int_ranges(ints, st.integers(1, int(high))), int_choices(ints))
    floats = safe_floats(name)
    logs = st.floats(max(low, 1e-6), high)
    steps = st.floats(1e-3, max(1e-3, high - low))
    ranges = float_ranges(floats, logs, steps, grow)
    return st.one_of(ranges, st.lists(floats, min_size=1, max_size=4, unique=True).map(_choices))


def _choices(values: list[Any]) -> Table:
    """A choices table."""
    return {"choices": values}


# ---------------------------------------------------------------- ranges and conditions


@st.composite
def float_ranges(
    draw: st.DrawFn,
    floats: st.SearchStrategy[float],
    logs: st.SearchStrategy[float],
    steps: st.SearchStrategy[float],
    grow: bool = False,
) -> Table:
    """A float range: uniform, log-uniform or stepped (with `grow` where narrowing allows it)."""
    style = draw(st.sampled_from(["uniform", "log", "step"]))
    low, high = sorted([draw(logs if style == "log" else floats) for _ in range(2)])
    table: Table = {"low": low, "high": high}
    if style == "log":
        table["log"] = True
    elif style == "step":
        table["step"] = draw(steps)
    elif draw(st.booleans()):
        table["log"] = False
    if grow and draw(st.booleans()):
        table["grow"] = draw(st.sampled_from(["none", "low", "high", "both"]))
    return table


@st.composite
def int_ranges(
    draw: st.DrawFn, ints: st.SearchStrategy[int], steps: st.SearchStrategy[int]
) -> Table:
    """An integer range: uniform, log-uniform (step 1 at most) or stepped."""
    style = draw(st.sampled_from(["uniform", "log", "step"]))
    low, high = sorted([draw(ints) for _ in range(2)])
    if style == "log":
        low, high = max(low, 1), max(high, 1)
        return {"low": low, "high": high, "log": True, **draw(optional_keys({"step": st.just(1)}))}
    if style == "step":
        return {"low": low, "high": high, "step": draw(steps)}
    return {"low": low, "high": high}


def int_choices(ints: st.SearchStrategy[int]) -> st.SearchStrategy[Table]:
    """Choices of integers."""
    return st.lists(ints, min_size=1, max_size=4, unique=True).map(_choices)


@st.composite
def whens(draw: st.DrawFn, earlier: Table) -> Table:
    """Maybe `when` on one or two earlier choice parameters, each with some of their choices."""
    choices = {name: rng["choices"] for name, rng in earlier.items() if "choices" in rng}
    if not choices or not draw(st.booleans()):
        return {}
    names = draw(st.lists(st.sampled_from(sorted(choices)), min_size=1, max_size=2, unique=True))
    return {"when": {name: draw(when_values(choices[name])) for name in names}}


def when_values(choices: list[Any]) -> st.SearchStrategy[Any]:
    """One of the choices, or a list of some of them."""
    one = st.sampled_from(choices)
    return st.one_of(one, st.lists(one, min_size=1, max_size=len(choices), unique=True))


# ---------------------------------------------------------------- a user's objective

IDENTIFIERS = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True),
    st.text(st.characters(categories=["Ll", "Lu", "Lo"]), min_size=1, max_size=6),
).filter(str.isidentifier)
SCALARS = st.one_of(
    st.text(max_size=8),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),  # nan and inf too: the config is the user's (a TOML date is refused)
    st.booleans(),
)
CONFIG = st.dictionaries(
    st.text(max_size=8),
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=6,
    ),
    max_size=4,
)
# Any metric name the objective can report: ctx.report(epoch, **{metric: v}) cannot take
# "epoch", which is refused.
METRICS = st.text(
    st.characters(categories=["L", "N"], include_characters=" _-./"), min_size=1, max_size=12
).filter(lambda name: bool(name.strip()) and name != "epoch")


@st.composite
def objective_table(draw: st.DrawFn, module: str) -> Table:
    """[objective]: entry (a file or a module name), metric, direction, test and config."""
    target = draw(st.sampled_from([module, module.removesuffix(".py")]))
    table: Table = {
        "entry": f"{target}:objective",
        "metric": draw(METRICS),
        "direction": draw(st.sampled_from(["maximize", "minimize"])),
        "max_epochs": 1,
    }
    if draw(st.booleans()):
        table["test"] = f"{module}:test"
    config: Table = draw(CONFIG)
    written: bool = bool(config) or draw(st.booleans())  # an empty [objective.config] too
    return {**table, "config": config} if written else table


@st.composite
def user_search(draw: st.DrawFn) -> Table:
    """[search] over any names, suggested in the file's order; integer ranges stay integers."""
    search: Table = {}
    for name in draw(st.lists(IDENTIFIERS, max_size=5, unique=True)):
        search[name] = {**draw(user_range()), **draw(whens(search))}
    return search


def user_range() -> st.SearchStrategy[Table]:
    """A user's range: floats, integers, or choices of strings, numbers or booleans."""
    floats = st.floats(-1e6, 1e6)
    ints = st.integers(-(10**12), 10**12)
    huge = st.floats(-8e307, 8e307)  # high - low stays finite; steps leave < 1e15 grid points
    return st.one_of(
        float_ranges(floats, st.floats(1e-6, 1e6), st.floats(1e-3, 1e3)),
        float_ranges(huge, st.floats(1e-300, 1e300), st.floats(1e294, 1e307)),
        int_ranges(ints, st.integers(1, 100)),
        st.lists(st.text(max_size=8), min_size=1, max_size=4, unique=True).map(_choices),
        int_choices(st.integers(-(2**63), 2**63 - 1)),
        st.lists(st.floats(allow_nan=False), min_size=1, max_size=4, unique=True).map(_choices),
        st.lists(st.booleans(), min_size=1, unique=True).map(_choices),
    )


# ---------------------------------------------------------------- samplers and pruners


def samplers() -> st.SearchStrategy[Table]:
    """[sampler] of every kind with its settings ({}: the default, TPE)."""
    narrowing = {
        "trials_per_round": st.integers(1, 4),
        "rounds": st.integers(0, 3),
        "keep": st.floats(1e-3, 1.0),
        "min_keep": st.integers(1, 5),
        "margin": st.floats(0.0, 1.0),
        "min_width": st.floats(0.0, 1.0),
        "min_complete": st.integers(1, 4),
        "drop_after": st.integers(0, 4),
        "wait_timeout": st.floats(0.5, 600.0),
    }
    return st.one_of(
        st.just({}),
        st.just({"kind": "random"}),
        _kind("tpe", {"n_startup_trials": st.integers(0, 10)}),
        _kind("narrowing", narrowing),
    )


def pruners() -> st.SearchStrategy[Table]:
    """[pruner] of every kind with its settings, none of which can prune every trial."""
    halving = {"min_resource": st.integers(1, 3), "reduction_factor": st.integers(2, 4)}
    return st.one_of(
        st.just({}),
        st.just({"kind": "none"}),
        _kind(
            "median", {"n_startup_trials": st.integers(0, 5), "n_warmup_steps": st.integers(0, 3)}
        ),
        _kind("successive_halving", halving),
        _kind("hyperband", halving),
        thresholds(),
    )


def _kind(kind: str, keys: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Table]:
    """A [sampler] or [pruner] of one kind, with some of its keys."""
    return optional_keys(keys).map(lambda table: {"kind": kind, **table})


@st.composite
def thresholds(draw: st.DrawFn) -> Table:
    """A threshold pruner: after a warm-up any bounds; without one, bounds no metric crosses."""
    warmup = draw(st.integers(0, 2))
    if warmup:
        low, high = sorted([draw(st.floats(-10, 10)) for _ in range(2)])
    else:  # accuracy and the user's score are in [0, 1]; a loss stays far below 1e6
        low, high = draw(st.floats(-1e6, 0.0)), draw(st.floats(1e6, 1e9))
    bounds = draw(st.sampled_from([("lower",), ("upper",), ("lower", "upper")]))
    table: Table = {"kind": "threshold", "n_warmup_steps": warmup}
    return table | {key: low if key == "lower" else high for key in bounds}


def literal_values(tp: Any) -> list[Any]:
    """The values of a Literal type hint (empty for any other hint)."""
    return list(get_args(tp)) if get_origin(tp) is Literal else []
