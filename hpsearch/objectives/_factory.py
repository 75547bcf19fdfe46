"""A study's functions: a user's entries from [objective], or the built-in model of [data]."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import SpecError
from hpsearch.objectives._entry import load_entry
from hpsearch.objectives._runner import ObjectiveFn
from hpsearch.spec import StudySpec

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore

    from hpsearch.objectives._context import TrialContext

TestFn = Callable[[dict[str, Any], "TrialContext", Mapping[str, "torch.Tensor"]], Mapping[str, Any]]


def objective_function(spec: StudySpec) -> ObjectiveFn:
    """The function each trial calls with (params, ctx)."""
    if spec.objective is None:
        from hpsearch.objectives._builtin import classifier_for

        return classifier_for(spec).objective
    require_entry(spec)
    assert spec.objective.entry is not None
    return load_entry(spec.objective.entry, spec.path.parent, "objective.entry", 2)  # type: ignore[return-value]


def require_entry(spec: StudySpec) -> None:
    """A study file with [objective] must name its function for any process to run it."""
    if spec.objective is not None and spec.objective.entry is None:
        raise SpecError(
            "objective.entry is missing; name the function, e.g. "
            'entry = "model.py:objective" (from Python, pass objective= to hpsearch.run)'
        )


def test_function(spec: StudySpec) -> TestFn | None:
    """The function `report` calls on each selected trial's weights, if the study has one."""
    if spec.objective is None:
        from hpsearch.objectives._builtin import classifier_for

        if spec.data.dataset != "mnist" and spec.data.test_fraction == 0:
            return None  # no test split to evaluate on (data.test_fraction = 0)
        return classifier_for(spec).test
    if spec.objective.test is None:
        return None
    return load_entry(spec.objective.test, spec.path.parent, "objective.test", 3)  # type: ignore[return-value]


def check_entries(spec: StudySpec) -> None:
    """Import a user's entries now, so a bad one fails before anything is created."""
    try:
        if spec.objective is not None and spec.objective.entry is not None:
            objective_function(spec)
        test_function(spec)
    except SpecError as exc:
        raise SpecError(f"{spec.path}: {exc}") from None


def check_data(spec: StudySpec, data_dir: Path, device: torch.device) -> None:
    """Load a built-in model's data now (it is cached), so missing data fails before any write."""
    if spec.objective is None:
        from hpsearch.objectives._builtin import classifier_for

        classifier_for(spec).load(spec.data, data_dir, device)


def make_objective(
    spec: StudySpec,
    data_dir: Path,
    device: torch.device,
    store: ArtifactStore | None = None,
    function: ObjectiveFn | None = None,
    worker: str = "",
) -> Callable[[optuna.Trial], float]:
    """The Optuna objective of a study: its function (or `function`), with data checked first."""
    from hpsearch.objectives._runner import make_objective as wrap

    function = function or objective_function(spec)
    check_data(spec, data_dir, device)
    return wrap(spec, function, data_dir, device, store, worker)
