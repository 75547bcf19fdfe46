"""The public Python API: what `import hpsearch` offers, documented, and working end to end."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

import hpsearch

PUBLIC = [name for name in hpsearch.__all__ if not name.startswith("__")]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_imports_with_a_google_style_docstring(name: str) -> None:
    """Users read these in their editor: arguments (where there are any) and an example."""
    obj = getattr(hpsearch, name)
    doc = inspect.getdoc(obj) or ""
    assert doc, f"hpsearch.{name} has no docstring"
    assert "Example:" in doc, f"hpsearch.{name}'s docstring has no example"
    takes_arguments = inspect.isfunction(obj) or (
        inspect.isclass(obj) and not issubclass(obj, Exception)
    )
    if takes_arguments:
        section = "Attributes:" if "Attributes:" in doc else "Args:"  # a dataclass, or a callable
        assert section in doc, f"hpsearch.{name}'s docstring does not list its arguments"
        documented = doc.split(section)[1].split("Returns:")[0].split("Example:")[0]
        for parameter in inspect.signature(obj).parameters:
            assert f"{parameter}:" in documented, f"hpsearch.{name}: {parameter} undocumented"


def test_the_package_ships_its_type_hints() -> None:
    """py.typed makes users' type checkers use hpsearch's strict hints."""
    assert (Path(hpsearch.__file__).parent / "py.typed").is_file()


def test_the_error_types_share_one_base() -> None:
    """`except hpsearch.HPSearchError` catches every error a user can fix."""
    for error in (hpsearch.SpecError, hpsearch.StorageError, hpsearch.DataError):
        assert issubclass(error, hpsearch.HPSearchError)
    assert issubclass(hpsearch.UsageError, hpsearch.HPSearchError)


def test_errors_name_python_arguments_not_command_line_options(
    make_study: Callable[..., Path], mnist_dir: Path, tmp_path: Path
) -> None:
    """A Python caller passed `trials=0`, not `--trials 0`; nothing is created."""
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    with pytest.raises(hpsearch.UsageError) as raised:
        hpsearch.run(make_study(), 0, storage=storage, data_dir=mnist_dir, device="cpu")
    assert str(raised.value).startswith("trials must be ≥ 1 but got 0")
    assert "e.g. trials=200" in str(raised.value) and "--" not in str(raised.value)
    assert raised.value.for_command_line().startswith("--trials must be ≥ 1 but got 0")
    with pytest.raises(hpsearch.UsageError, match=r"^need 1 ≤ heartbeat < grace_period"):
        hpsearch.run(make_study(), 2, storage=storage, heartbeat=5, grace_period=5)
    assert not (tmp_path / "trials.db").exists()


def test_load_spec_gives_the_frozen_spec() -> None:
    """The spec can be inspected and changed only by making a new one."""
    spec = hpsearch.load_spec("mnist-narrow")
    assert isinstance(spec, hpsearch.StudySpec)
    assert spec.sampler.kind == "narrowing" and spec.direction == "maximize"
    with pytest.raises(AttributeError):
        spec.seed = 1  # type: ignore[misc]


@pytest.mark.slow
def test_a_tiny_study_runs_from_python(
    make_study: Callable[..., Path], mnist_dir: Path, storage_url: str
) -> None:
    """hpsearch.run is the machinery of `hpsearch run`: same storage, same summary, resumable."""
    path = make_study()
    summary = hpsearch.run(
        path, 3, storage=storage_url, data_dir=mnist_dir, device="cpu", progress=False
    )
    assert isinstance(summary, hpsearch.RunSummary)
    assert summary.name == "tiny" and summary.target == 3 and summary.finished == 3
    assert summary.best is not None and 0.5 < summary.best.value <= 1.0  # type: ignore[operator]
    study = optuna.load_study(study_name="tiny", storage=storage_url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.metric_names == ["valid_accuracy"]  # optuna-dashboard names the value
    again = hpsearch.run(
        path, 4, storage=storage_url, data_dir=mnist_dir, device="cpu", progress=False
    )
    assert again.finished == 4 and len(study.trials) == 4  # the total: one more trial


def test_create_and_join_from_python(
    make_study: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """A study created from Python records its total; joining a missing one is refused."""
    path = make_study()
    created = hpsearch.create(path, 5, storage=storage_url)
    assert (created.name, created.target, created.finished) == ("tiny", 5, 0)
    stored = optuna.load_study(study_name="tiny", storage=storage_url)
    assert stored.user_attrs["target_trials"] == 5
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    hpsearch.create(make_study(name="other"), 1, storage=empty)
    with pytest.raises(hpsearch.StorageError, match="no study 'tiny'"):
        hpsearch.join(path, storage=empty, device="cpu")


def test_the_narrowing_sampler_drives_a_plain_optuna_study() -> None:
    """The exported sampler works without hpsearch's runner: round 1 narrows around the best."""
    from hpsearch.spec import FloatRange, SamplerSpec

    search = {"lr": FloatRange(1e-4, 1e-1, log=True)}
    options = SamplerSpec(kind="narrowing", min_keep=2, min_complete=2)
    sampler = hpsearch.NarrowingSampler(search, options, trials_per_round=8, maximize=True)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        return -abs(math.log10(trial.suggest_float("lr", 1e-4, 1e-1, log=True)) + 2.5)

    study.optimize(objective, n_trials=16)
    first, second = (study.trials[n].user_attrs["narrowing_ranges"]["lr"] for n in (0, 8))
    assert (first["low"], first["high"]) == (1e-4, 1e-1)
    assert 1e-4 <= second["low"] < second["high"] <= 1e-1
    assert second["high"] / second["low"] < 1e3 / 3  # at least a third narrower in log space
    assert all(second["low"] <= t.params["lr"] <= second["high"] for t in study.trials[8:])


def test_an_artifact_folder_that_is_a_file_is_refused_before_anything_is_stored(
    make_study: Callable[..., Path], tmp_path: Path
) -> None:
    """The library checks what click checks for the command line."""
    (tmp_path / "a-file").write_text("not a folder")
    storage = f"sqlite:///{tmp_path / 'trials.db'}"
    with pytest.raises(hpsearch.StorageError, match=r"artifact folder .*a-file is a file"):
        hpsearch.run(make_study(), 1, storage=storage, artifacts=tmp_path / "a-file")
    assert not (tmp_path / "trials.db").exists()
