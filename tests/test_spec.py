"""Study files load into frozen typed specs; bad files fail with the key and the received value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hpsearch.errors import SpecError
from hpsearch.spec import (
    Choice,
    FloatRange,
    list_study_files,
    load_spec,
    parse_spec,
    signature,
    to_toml,
)


def parse(text: str) -> object:
    """Parse study text as if read from x.toml."""
    return parse_spec(text, Path("x.toml"))


def test_shipped_mnist_reg_matches_the_issue() -> None:
    spec = load_spec("mnist-reg")
    assert spec.name == "mnist-reg"
    assert spec.direction == "maximize"
    assert (spec.data.train_size, spec.data.valid_size) == (48000, 12000)
    assert spec.model.hidden == (500, 400, 300, 200, 100, 50)
    assert spec.search["lr"] == FloatRange(1e-4, 1e-1, log=True)
    assert spec.search["dropout"] == FloatRange(
        0.1, 0.5, step=0.1, when=(("batch_norm", (False,)),)
    )
    assert spec.search["batch_norm"] == Choice((True, False))
    assert list(spec.search) == ["lr", "weight_decay", "batch_size", "batch_norm", "dropout"]


def test_every_shipped_study_file_is_valid() -> None:
    files = list_study_files()
    assert files, "no study files found"
    for path in files:
        assert load_spec(str(path)).name == path.stem


def test_spec_is_frozen() -> None:
    spec = load_spec("mnist-reg")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.search["lr"] = FloatRange(1, 2)  # type: ignore[index]


def test_name_defaults_to_file_stem_and_ints_become_floats() -> None:
    spec = parse_spec("[search]\nlr = { low = 1, high = 2 }\n", Path("/a/my-study.toml"))
    assert spec.name == "my-study"
    assert spec.search["lr"] == FloatRange(1.0, 2.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed = 1\nlr = 3", "unknown key 'lr'"),
        ("[training]\nlearning_rate = 0.1", "unknown key 'training.learning_rate'"),
        ("[search]\nmomentum2 = { choices = [1] }", "unknown key 'search.momentum2'"),
        ("[search]\nlr = { low = 1e-4, high = 1e-1, lg = true }", "unknown key 'search.lr.lg'"),
        ("[search]\nlr = { low = 0.1, high = 0.001 }", "search.lr: low must be ≤ high"),
        ("[search]\nlr = { low = 0, high = 0.1, log = true }", "must be > 0 on a log scale"),
        (
            "[search]\nweight_decay = { low = -1, high = 1, log = true }",
            "search.weight_decay.low must be > 0 on a log scale but got -1",
        ),
        (
            "[search]\ndropout = { low = 0.1, high = 1.5 }",
            "search.dropout.high must be < 1 but got 1.5",
        ),
        ("[search]\ndropout = { low = -0.1, high = 0.5 }", "search.dropout.low must be ≥ 0"),
        ("[training]\ndropout = 1.0", "training.dropout must be < 1 but got 1.0"),
        ("[search]\nbatch_size = { choices = [] }", "search.batch_size.choices is empty"),
        ("[search]\nbatch_norm = { choices = [1, 2] }", "must be true or false but got 1"),
        ("[search]\noptimizer = { choices = ['adam', 'lbfgs'] }", "but got 'lbfgs'"),
        ("[training]\nschedule = 'linear'", "training.schedule must be one of"),
        ("[search]\nschedule = { choices = ['cosine', 'step'] }", "but got 'step'"),
        ("[training]\nmax_epochs = 0", "training.max_epochs must be ≥ 1 but got 0"),
        ("[training]\nmax_epochs = 'ten'", "training.max_epochs must be an integer but got 'ten'"),
        (
            "[pruner]\nkind = 'median'\nreduction_factor = 2",
            "pruner.reduction_factor does not apply",
        ),
        ("[pruner]\nkind = 'threshold'", "needs lower or upper"),
        ("[sampler]\nkind = 'grid'", "sampler.kind must be one of"),
        (
            "[sampler]\nkind = 'narrowing'\ndrop_after = -1",
            "sampler.drop_after must be ≥ 0 (0: drop at once) but got -1",
        ),
        ("[sampler]\nkind = 'tpe'\ndrop_after = 2", "sampler.drop_after does not apply"),
        ("[sampler]\nkind = 'tpe'\ndrop_after = 3", "sampler.drop_after does not apply"),
        ("[pruner]\nkind = 'none'\nn_warmup_steps = 1", "pruner.n_warmup_steps does not apply"),
        ("path = 'x'", "unknown key 'path'"),
    ],
)
def test_bad_spec_names_the_key_and_value(text: str, message: str) -> None:
    with pytest.raises(SpecError, match=None) as info:
        parse(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_malformed_toml_gives_the_line() -> None:
    with pytest.raises(SpecError) as info:
        parse("seed = 1\n[training\nmax_epochs = 3\n")
    assert "line 2" in str(info.value)


def test_the_lr_schedule_is_a_training_setting_and_a_searchable_choice() -> None:
    fixed = parse("[training]\nschedule = 'cosine'")
    assert fixed.training.schedule == "cosine"
    searched = parse("[search]\nschedule = { choices = ['constant', 'cosine'] }")
    assert searched.search["schedule"] == Choice(("constant", "cosine"))


def test_a_folder_or_a_non_utf8_file_as_study(tmp_path: Path) -> None:
    (tmp_path / "d.toml").mkdir()
    with pytest.raises(SpecError, match=r"is a folder; pass the \.toml file in it"):
        load_spec(str(tmp_path / "d.toml"))
    latin = tmp_path / "latin.toml"
    latin.write_bytes('description = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(SpecError, match=r"not UTF-8 text .* save it as UTF-8 TOML"):
        load_spec(str(latin))


USER_STUDY = """\
name = "mine"
max_failures = 2
[objective]
entry = "toy_objective.py:objective"
metric = "valid_accuracy"
direction = "maximize"
max_epochs = 3
[objective.config]
n = 400
nested = { a = [1, 2.5], b = "x" }
[search]
act = { choices = ["relu", "tanh"] }
wide = { choices = [true, false] }
hidden = { low = 4, high = 32, step = 4, when = { act = "relu", wide = [true] } }
lr = { low = 1e-3, high = 0.3, log = true }
p = { low = 0.0, high = 0.5, when = { act = ["relu", "tanh"] } }
[sampler]
kind = "narrowing"
trials_per_round = 4
[pruner]
kind = "threshold"
lower = 0.2
"""
IMAGEFOLDER_STUDY = """\
[data]
dataset = "imagefolder"
folder = "flowers"
image_size = 16
[model]
channels = [4, 8]
[search]
augment = { choices = [true, false] }
lr = { low = 1e-4, high = 1e-1, log = true, grow = "both" }
[sampler]
kind = "narrowing"
keep = 0.3
[pruner]
kind = "hyperband"
reduction_factor = 2
"""


@pytest.mark.parametrize(
    "text", [USER_STUDY, IMAGEFOLDER_STUDY, *[p.read_text() for p in list_study_files()]]
)
def test_a_spec_written_back_as_toml_parses_to_the_same_spec_and_signature(text: str) -> None:
    """What `hpsearch show` prints runs exactly the study it was printed from."""
    path = Path("/nowhere/study.toml")
    spec = parse_spec(text, path)
    again = parse_spec(to_toml(spec), path)
    assert dataclasses.replace(again, text=spec.text) == spec
    assert signature(again) == signature(spec)
    assert to_toml(again) == to_toml(spec)
