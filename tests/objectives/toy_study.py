"""The toy user objective's study file, shared by the tests of a user's own objective."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna

TOY = Path(__file__).with_name("toy_objective.py")
STUDY = """\
description = "toy MLP on synthetic tensors"
seed = 5
max_failures = {max_failures}

[objective]
entry = "toy.py:objective"
metric = "valid_accuracy"
direction = "maximize"
max_epochs = 3
test = "toy.py:test"

[objective.config]
mode = "{mode}"
n = 512

[search]
lr = {{ low = 0.01, high = 1.0, log = true }}
width = {{ low = 4, high = 32 }}
act = {{ choices = ["relu", "tanh"] }}
dropout = {{ low = 0.1, high = 0.4, step = 0.1, when = {{ act = "relu" }} }}

[sampler]
kind = "{sampler}"
{sampler_keys}
[pruner]
kind = "none"
"""


def write_toy(
    folder: Path,
    mode: str = "ok",
    sampler: str = "random",
    sampler_keys: str = "",
    max_failures: int = 5,
    text: str | None = None,
) -> Path:
    """toy.py and a study file naming it, in folder; returns the study file."""
    folder.mkdir(exist_ok=True)
    shutil.copy(TOY, folder / "toy.py")
    study = folder / "toy-study.toml"
    study.write_text(
        text
        or STUDY.format(
            mode=mode, sampler=sampler, sampler_keys=sampler_keys, max_failures=max_failures
        )
    )
    return study


def stored(url: str, name: str = "toy-study") -> list[optuna.trial.FrozenTrial]:
    """Every stored trial of the study."""
    return optuna.load_study(study_name=name, storage=url).trials
