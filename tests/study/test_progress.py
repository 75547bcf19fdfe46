"""The progress line counts finished and pruned trials from storage and shows the best value."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from hpsearch.study._progress import TrialProgress


def _study(direction: str) -> optuna.Study:
    study = optuna.create_study(study_name="demo", direction=direction)
    for value in (0.5, 0.8, 0.2):
        study.add_trial(create_trial(value=value))
    study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.9}))
    study.add_trial(create_trial(state=TrialState.FAIL))
    return study


def test_the_line_counts_finished_trials_and_shows_the_best_completed_value() -> None:
    out = io.StringIO()
    progress = TrialProgress(_study("maximize"), target=10, file=out)
    progress.close()
    line = out.getvalue().split("\r")[-1]
    assert progress.bar.n == 4  # three completed + one pruned; the failed one is not finished
    assert "4/10" in line and "pruned=1" in line and "best=0.8000" in line


def test_minimizing_studies_show_the_lowest_value_and_the_callback_picks_up_new_trials() -> None:
    out = io.StringIO()
    study = _study("minimize")
    progress = TrialProgress(study, target=5, file=out)
    study.add_trial(create_trial(value=0.1))
    progress(study, study.trials[-1])
    progress.close()
    assert progress.bar.n == 5
    assert "best=0.1000" in out.getvalue().split("\r")[-1]


def test_a_prefix_such_as_the_live_worker_count_leads_the_postfix() -> None:
    out = io.StringIO()
    progress = TrialProgress(_study("maximize"), target=10, file=out)
    progress.refresh("workers=2 ")
    progress.close()
    assert "workers=2 pruned=1" in out.getvalue()


def test_a_disabled_line_writes_nothing() -> None:
    out = io.StringIO()
    study = _study("maximize")
    progress = TrialProgress(study, target=10, enabled=False, file=out)
    progress(study, study.trials[0])
    progress.refresh("workers=1 ")
    progress.close()
    assert out.getvalue() == ""


def test_a_log_gets_one_plain_line_per_finished_trial() -> None:
    """No terminal (docker logs, CI, a file): no redrawn bar, one line per trial that ended."""
    out = io.StringIO()
    study = _study("maximize")
    progress = TrialProgress(study, target=10, file=out, lines=True)
    assert out.getvalue() == ""  # trials stored before this run are not repeated
    study.add_trial(create_trial(value=0.9, user_attrs={"epochs": 3, "seconds": 1.25}))
    progress(study, study.trials[-1])
    study.add_trial(create_trial(state=TrialState.FAIL))
    progress.refresh()  # the launcher of several workers polls storage instead
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "trial 5 complete value=0.9000 epochs=3 seconds=1.2 best=0.9000 finished=5/10",
        "trial 6 fail value=- epochs=- seconds=- best=0.9000 finished=5/10",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


@pytest.mark.slow
def test_the_cli_writes_lines_when_standard_error_is_not_a_terminal(
    make_study: Callable[..., Path], mnist_dir: Path, tmp_path: Path
) -> None:
    """Through `hpsearch run` with its progress on and standard error piped."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'log.db'}"
    args = ["run", "--study", str(make_study()), "--trials", "2", "--storage", url]
    args += ["--data-dir", str(mnist_dir), "--device", "cpu"]
    done = subprocess.run(
        [sys.executable, "-m", "hpsearch", *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    trial_lines = [line for line in done.stderr.splitlines() if line.startswith("trial ")]
    assert [line.split()[:3] for line in trial_lines] == [
        ["trial", "0", "complete"],
        ["trial", "1", "complete"],
    ]
    assert trial_lines[-1].endswith("finished=2/2")
    assert "\r" not in done.stderr and "\x1b" not in done.stderr


@pytest.mark.slow
def test_verbose_shows_optunas_own_lines_and_a_log_file_keeps_them(
    make_study: Callable[..., Path], mnist_dir: Path, tmp_path: Path
) -> None:
    """Hidden by default; -v on standard error; --log-file in the file only."""
    import subprocess
    import sys

    study = make_study()

    def run(name: str, *extra: str) -> str:
        url = f"sqlite:///{tmp_path / name}.db"
        args = ["run", "--study", str(study), "--trials", "1", "--storage", url, "--no-progress"]
        args += ["--data-dir", str(mnist_dir), "--device", "cpu", *extra]
        done = subprocess.run(
            [sys.executable, "-m", "hpsearch", *args], capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    finished = "Trial 0 finished with value"
    assert finished not in run("quiet")
    assert finished in run("loud", "-v")
    log = tmp_path / "optuna.log"
    assert finished not in run("logged", "--log-file", str(log))
    assert finished in log.read_text()


def test_a_log_file_in_a_missing_folder_is_one_line(
    make_study: Callable[..., Path], tmp_path: Path
) -> None:
    """Refused before anything is created."""
    from click.testing import CliRunner

    from hpsearch.cli import main

    url = f"sqlite:///{tmp_path / 'x.db'}"
    missing = tmp_path / "no" / "such.log"
    args = ["run", "--study", str(make_study()), "--trials", "1", "--storage", url]
    result = CliRunner().invoke(main, [*args, "--log-file", str(missing)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert f"--log-file {missing}: the folder {missing.parent} does not exist" in result.output
    assert not (tmp_path / "x.db").exists()
