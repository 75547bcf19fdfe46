"""The shipped examples of a user's own model run as the docs say, on the committed MNIST subset."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import Result

Cli = Callable[..., Result]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet", "lenet-fit", "lightning"])
def test_the_examples_run_and_report(cli: Cli, name: str, storage_url: str, tmp_path: Path) -> None:
    """`hpsearch run --study lenet` finds an example by name, trains it, and reports on test."""
    run = ["--study", name, "--storage", storage_url]
    result = cli("run", *run, "--trials", "2", "--max-epochs", "1")
    assert result.exit_code == 0, result.output
    assert f"study {name}: 2/2 trials finished (2 complete" in result.output
    trials = optuna.load_study(study_name=name, storage=storage_url).trials
    assert all(t.value is not None and t.value > 0.3 for t in trials)  # chance is 0.1
    report = cli("report", *run, "-o", str(tmp_path / "report"), "--data-dir", "tests/data")
    assert report.exit_code == 0, report.output
    assert "test accuracy" in report.output and "(evaluated now and recorded)" in report.output
