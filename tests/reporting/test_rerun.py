"""`hpsearch rerun` retrains a stored trial from its parameters and seed and reproduces it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import Result

Cli = Callable[..., Result]


@pytest.mark.parametrize("overrides", [[], ["--max-epochs", "2", "--seed", "11"]])
@pytest.mark.slow
def test_rerun_reproduces_a_cpu_trial_exactly(
    cli: Cli,
    make_study: Callable[..., Path],
    storage_url: str,
    mnist_dir: Path,
    overrides: list[str],
) -> None:
    path = make_study(max_epochs=3)
    args = ["run", "--study", str(path), "--trials", "2", "--storage", storage_url, *overrides]
    assert cli(*args).exit_code == 0
    stored = optuna.load_study(study_name="tiny", storage=storage_url).trials[1]
    # Editing the file afterwards does not matter: rerun uses the study file recorded at creation.
    path.write_text(path.read_text().replace("high = 3e-3", "high = 1e-2"))
    result = cli(
        "rerun",
        "--study",
        str(path),
        "--trial",
        "1",
        "--storage",
        storage_url,
        "--data-dir",
        str(mnist_dir),
        "--threads",
        str(stored.user_attrs["threads"]),
    )
    assert result.exit_code == 0, result.output
    assert f"stored valid_accuracy = {stored.value!r}" in result.output
    assert f": {stored.value!r}\n" in result.output.split("retrained on", 1)[1]
    assert "identical: the trial reproduces exactly" in result.output
    after = optuna.load_study(study_name="tiny", storage=storage_url).trials
    assert len(after) == 2  # nothing was written


@pytest.mark.slow
def test_rerun_of_an_absent_trial(
    cli: Cli, make_study: Callable[..., Path], storage_url: str, mnist_dir: Path
) -> None:
    path = make_study()
    assert (
        cli("run", "--study", str(path), "--trials", "1", "--storage", storage_url).exit_code == 0
    )
    result = cli(
        "rerun",
        "--study",
        str(path),
        "--trial",
        "7",
        "--storage",
        storage_url,
        "--data-dir",
        str(mnist_dir),
    )
    assert result.exit_code == 1
    assert result.output.strip() == "Error: study 'tiny' has no trial #7; its trials are #0..#0"


@pytest.mark.slow
def test_rerun_and_report_use_the_file_each_trial_ran_with(
    cli: Cli, make_study: Callable[..., Path], storage_url: str, mnist_dir: Path, tmp_path: Path
) -> None:
    path = make_study(max_epochs=1)
    run = ["run", "--study", str(path), "--storage", storage_url]
    assert cli(*run, "--trials", "1").exit_code == 0
    changed = path.read_text().replace("[training]", "[model]\nhidden = [32]\n[training]")
    path.write_text(changed.replace("max_epochs = 1", "max_epochs = 2"))
    assert cli(*run, "--trials", "2", "--allow-changed-spec").exit_code == 0
    trials = optuna.load_study(study_name="tiny", storage=storage_url).trials
    for trial in trials:
        args = ["rerun", "--study", str(path), "--trial", str(trial.number)]
        args += ["--storage", storage_url, "--data-dir", str(mnist_dir)]
        result = cli(*args, "--threads", str(trial.user_attrs["threads"]))
        assert "identical: the trial reproduces exactly" in result.output, result.output
    report = ["report", "--study", str(path), "--storage", storage_url]
    result = cli(*report, "--data-dir", str(mnist_dir), "-o", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output  # both trials' weights load into their own model


def test_rerun_in_a_study_without_trials(
    cli: Cli, make_study: Callable[..., Path], storage_url: str, mnist_dir: Path
) -> None:
    path = make_study()
    assert (
        cli("create", "--study", str(path), "--trials", "2", "--storage", storage_url).exit_code
        == 0
    )
    args = ["rerun", "--study", str(path), "--trial", "0", "--storage", storage_url]
    result = cli(*args, "--data-dir", str(mnist_dir))
    assert result.output.strip() == "Error: study 'tiny' has no trial #0; it has no trials yet"


def test_a_rerun_on_another_device_type_says_which_to_pass() -> None:
    from hpsearch.reporting._rerun import RerunResult

    gpu_trial = RerunResult(3, "COMPLETE", 0.9, 0.8, 2, 8, "cpu", stored_device="cuda:1")
    assert gpu_trial.hint() == "; the trial ran on cuda:1, pass --device cuda"
    cpu_trial = RerunResult(3, "COMPLETE", 0.9, 0.8, 2, 8, "cpu", stored_device="cpu")
    assert cpu_trial.hint() == "; the trial ran with 8 threads: leave --threads out"
    assert RerunResult(3, "COMPLETE", 0.9, 0.8, 8, 8, "cpu", stored_device="cpu").hint() == ""
