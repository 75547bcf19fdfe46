"""Export round trip: the CSV and JSON hold exactly the study's trials and stored values."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import Result

Cli = Callable[..., Result]


@pytest.fixture
def study_with_pruned(cli: Cli, make_study: Callable[..., Path], storage_url: str) -> Path:
    """Four trials of a narrowing study, the last ones pruned by a threshold."""
    text = (
        "seed = 1\n[data]\ntrain_size = 2400\nvalid_size = 600\n[model]\nhidden = [32]\n"
        "[training]\nmax_epochs = 2\n[search]\nlr = { low = 1e-4, high = 1e-2, log = true }\n"
        "batch_norm = { choices = [true, false] }\n"
        "dropout = { low = 0.1, high = 0.5, step = 0.1, when = { batch_norm = false } }\n"
        "[sampler]\nkind = 'narrowing'\ntrials_per_round = 2\nmin_keep = 1\nmin_complete = 1\n"
        "[pruner]\nkind = 'threshold'\nlower = 0.5\nn_warmup_steps = 0\n"
    )
    path = make_study(name="exp", text=text)
    result = cli("run", "--study", str(path), "--trials", "4", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.slow
def test_csv_round_trip(
    cli: Cli, study_with_pruned: Path, storage_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "trials.csv"
    result = cli(
        "export",
        "--study",
        str(study_with_pruned),
        "--storage",
        storage_url,
        "--format",
        "csv",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    trials = optuna.load_study(study_name="exp", storage=storage_url).trials
    assert [int(r["number"]) for r in rows] == [t.number for t in trials]
    for row, trial in zip(rows, trials, strict=True):
        assert row["state"] == trial.state.name
        assert (float(row["value"]) if row["value"] else None) == trial.value
        assert float(row["param_lr"]) == trial.params["lr"]
        assert row["param_dropout"] == (
            "" if "dropout" not in trial.params else str(trial.params["dropout"])
        )
        assert int(row["epochs"]) == trial.user_attrs["epochs"]
        assert float(row["seconds"]) == trial.user_attrs["seconds"]
        assert int(row["narrowing_round"]) == trial.number // 2
        assert json.loads(row["narrowing_ranges"]) == trial.user_attrs["narrowing_ranges"]
        assert row["host"] == trial.user_attrs["host"]
        pruned_at = trial.user_attrs.get("pruned_at_epoch")
        assert row["pruned_at_epoch"] == ("" if pruned_at is None else str(pruned_at))


@pytest.mark.slow
def test_json_round_trip_with_history(cli: Cli, study_with_pruned: Path, storage_url: str) -> None:
    result = cli(
        "export", "--study", str(study_with_pruned), "--storage", storage_url, "--format", "json"
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    trials = optuna.load_study(study_name="exp", storage=storage_url).trials
    assert payload["study"] == "exp" and payload["direction"] == "maximize"
    assert len(payload["trials"]) == len(trials)
    for rec, trial in zip(payload["trials"], trials, strict=True):
        assert rec["value"] == trial.value and rec["state"] == trial.state.name
        assert rec["history"] == trial.user_attrs["history"]
        assert {
            k[6:]: v for k, v in rec.items() if k.startswith("param_") and v is not None
        } == trial.params


@pytest.mark.slow
def test_unwritable_output(cli: Cli, study_with_pruned: Path, storage_url: str) -> None:
    result = cli(
        "export",
        "--study",
        str(study_with_pruned),
        "--storage",
        storage_url,
        "-o",
        "/nonexistent/dir/trials.csv",
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot write /nonexistent/dir/trials.csv")
    assert len(result.output.strip().splitlines()) == 1


def test_export_of_a_missing_study(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    other = make_study(name="other")
    assert (
        cli("create", "--study", str(other), "--trials", "1", "--storage", storage_url).exit_code
        == 0
    )
    result = cli("export", "--study", str(make_study()), "--storage", storage_url)
    assert result.exit_code == 1 and "no study 'tiny'" in result.output


@pytest.mark.slow
def test_a_failed_export_keeps_the_previous_file(
    cli: Cli, study_with_pruned: Path, storage_url: str, tmp_path: Path
) -> None:
    import os

    out = tmp_path / "trials.csv"
    out.write_text("yesterday's export\n")
    (tmp_path / f".trials.csv.{os.getpid()}.tmp").mkdir()  # the temporary file cannot be made
    args = ["export", "--study", str(study_with_pruned), "--storage", storage_url, "-o", str(out)]
    result = cli(*args)
    assert result.exit_code == 1 and "cannot write" in result.output
    assert out.read_text() == "yesterday's export\n"


def test_csv_of_a_study_without_trials_has_the_header(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    path = make_study()
    assert (
        cli("create", "--study", str(path), "--trials", "1", "--storage", storage_url).exit_code
        == 0
    )
    result = cli("export", "--study", str(path), "--storage", storage_url)
    assert result.output.startswith("number,state,value,epochs,"), result.output
    assert len(result.output.splitlines()) == 1
