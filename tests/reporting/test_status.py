"""`hpsearch status`: running, stale and failed trials, from storage alone, as text and JSON."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner, Result

from hpsearch import _keys
from hpsearch.cli import main
from processes import BEAT, hpsearch, wait_until
from processes import sleepy_study as sleepy_file
from processes import sleepy_trials as trials


def sleepy(folder: Path) -> Path:
    """Trials of six 3-second epochs (long enough to be mid-trial under load); trial 0 fails."""
    return sleepy_file(folder, epoch=3.0, slow_epoch=3.0, fail_trials=(0,), max_epochs=6)


def reporting(number: int) -> Callable[[list[optuna.trial.FrozenTrial]], bool]:
    """Whether trial `number` is RUNNING and has reported an epoch."""
    return lambda ts: any(
        t.number == number and t.state.name == "RUNNING" and t.intermediate_values for t in ts
    )


@pytest.mark.slow
def test_status_shows_a_live_a_stale_and_a_failed_trial(tmp_path: Path, storage: str) -> None:
    """A running worker, a killed one (stale past the grace period) and a failed trial."""
    url = storage
    study = sleepy(tmp_path)
    created = hpsearch("create", "--study", str(study), "--trials", "6", url=url)
    assert created.wait(timeout=60) == 0, created.communicate()
    work = ["worker", "--study", str(study), "--device", "cpu", "--no-progress", *BEAT]
    alive = hpsearch(*work, url=url)  # trial 0 fails at once, then trial 1 (18 s)
    try:
        wait_until(lambda: reporting(1)(trials(url)))
        doomed = hpsearch(*work, url=url)  # trial 2
        wait_until(lambda: reporting(2)(trials(url)))
        doomed.kill()
        doomed.communicate()
        time.sleep(4)  # past the 3 s grace period; the live worker is mid-trial, not checking
        args = ["status", "--study", str(study), "--storage", url, "--grace-period", "3"]
        shown = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
        text = CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        alive.kill()
        alive.communicate()
    assert shown.exit_code == 0, shown.output
    status = json.loads(shown.output)
    assert (status["total"], status["failed"]) == (6, 1)
    assert status["failures"] == [{"number": 0, "error": "ValueError: planned failure in trial 0"}]
    running = {t["number"]: t for t in status["running"]}
    assert running[2]["stale"] and running[2]["heartbeat_age"] > 3
    live = [t for t in status["running"] if not t["stale"]]
    assert len(live) == 1 and live[0]["epoch"] >= 1 and live[0]["device"] == "cpu"
    assert live[0]["worker"].endswith(f"-{alive.pid}")  # hpsearch worker's host-pid tag
    assert json.loads(json.dumps(status)) == status  # plain JSON, round-trips
    assert text.exit_code == 0
    assert text.output.count("STALE") == 1 and "#2 " in text.output
    assert "failed #0: ValueError: planned failure in trial 0" in text.output


def test_status_of_a_missing_study_or_database_is_one_line(tmp_path: Path) -> None:
    """Nothing is created; the fix is named."""
    study = sleepy(tmp_path)
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = CliRunner().invoke(main, ["status", "--study", str(study), "--storage", url])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert "no SQLite file" in result.output and not (tmp_path / "none.db").exists()
    (tmp_path / "other.db").touch()
    optuna.create_study(study_name="other", storage=f"sqlite:///{tmp_path / 'other.db'}")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    missing = CliRunner().invoke(main, ["status", "--study", str(study), "--storage", other])
    assert missing.exit_code == 1 and "no study 'sleepy'" in missing.output


@pytest.mark.slow
def test_watch_stops_on_ctrl_c_with_one_line(tmp_path: Path) -> None:
    """Exit 130 and one line on standard error, no traceback."""
    study = sleepy(tmp_path)
    url = f"sqlite:///{tmp_path / 'watch.db'}"
    created = hpsearch("create", "--study", str(study), "--trials", "2", url=url)
    assert created.wait(timeout=60) == 0
    watcher = hpsearch("status", "--study", str(study), "--watch", url=url, separate_stderr=True)
    assert watcher.stdout is not None
    assert watcher.stdout.readline().startswith("study sleepy: 0/2 finished")
    watcher.send_signal(signal.SIGINT)
    _, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 130
    assert err.strip() == "stopped watching"


def test_status_on_an_unreachable_postgresql_is_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    """Port 1 on loopback refuses connections: one line, the password masked, exit 1."""
    study = sleepy(tmp_path)
    url = "postgresql+psycopg://bob:s3cret@127.0.0.1:1/db"
    for extra in ([], ["--json"], ["--watch"]):
        result = CliRunner().invoke(
            main, ["status", "--study", str(study), "--storage", url, *extra]
        )
        assert result.exit_code == 1, result.output
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
        assert "cannot open the database at postgresql+psycopg://bob:***@127.0.0.1:1/db" in (
            result.output
        )
        assert "s3cret" not in result.output and "Traceback" not in result.output


ZERO = datetime(2026, 1, 1, 9, 0)


def stored(
    number: int, state: str, value: float | None, epochs: int, start_s: float, end_s: float
) -> optuna.trial.FrozenTrial:
    """A finished trial as hpsearch stores it: a per-epoch history, from start_s to end_s."""
    history = [{"epoch": e, "valid_accuracy": 0.5, "seconds": 1.0} for e in range(1, epochs + 1)]
    return optuna.trial.FrozenTrial(
        number=number,
        state=optuna.trial.TrialState[state],
        value=value,
        datetime_start=ZERO + timedelta(seconds=start_s),
        datetime_complete=ZERO + timedelta(seconds=end_s),
        params={},
        distributions={},
        user_attrs={_keys.HISTORY: history, _keys.EPOCHS: epochs},
        system_attrs={},
        intermediate_values={e: 0.5 for e in range(1, epochs + 1)},
        trial_id=number,
    )


def add_trials(url: str, name: str, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Store finished trials, their times included, in the real study."""
    study = optuna.load_study(study_name=name, storage=url)
    for trial in trials:
        study.add_trial(trial)


def status(study: Path, url: str) -> tuple[dict[str, Any], Result]:
    """`hpsearch status --json` and `hpsearch status`, in-process."""
    args = ["status", "--study", str(study), "--storage", url]
    shown = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    text = CliRunner().invoke(main, args, catch_exceptions=False)
    assert shown.exit_code == 0 and text.exit_code == 0, shown.output + text.output
    return json.loads(shown.output), text


def economy_trials() -> list[optuna.trial.FrozenTrial]:
    """Seven trials over 13 minutes: the best (#2) at 5 min, then a tie, a failure and prunes."""
    no_history = stored(5, "PRUNED", None, 2, 500, 520)
    no_history.user_attrs.pop(_keys.HISTORY)  # an older study: only the reported steps count
    return [
        stored(0, "COMPLETE", 0.90, 20, 0, 60),
        stored(1, "PRUNED", None, 3, 60, 90),
        stored(2, "COMPLETE", 0.95, 20, 90, 300),
        stored(3, "FAIL", None, 1, 300, 310),
        stored(4, "COMPLETE", 0.93, 12, 310, 500),
        no_history,
        stored(6, "COMPLETE", 0.95, 20, 520, 780),  # equals the best: no improvement
    ]


def test_status_shows_epochs_against_full_trials_and_the_best_over_time(
    cli: Callable[..., Result], make_study: Callable[..., Path], storage_url: str
) -> None:
    """78 epochs of the 10 x 20 that full trials cost; the best at 5 min, then 8 min without."""
    path = make_study(max_epochs=20)
    assert (
        cli("create", "--study", str(path), "--trials", "10", "--storage", storage_url).exit_code
        == 0
    )
    add_trials(storage_url, "tiny", economy_trials())
    shown, text = status(path, storage_url)
    assert (shown["epochs_run"], shown["max_epochs"], shown["epochs_full"]) == (78, 20, 200)
    assert shown["anytime"] == [[60.0, 0.9], [300.0, 0.95]]
    assert (shown["best_trial"], shown["best_found_at_s"]) == (2, 300.0)
    assert (shown["since_best_s"], shown["trials_since_best"]) == (480.0, 3)  # #3 failed
    assert "epochs: 78 run of the 200 that 10 full trials would cost (39 %)" in text.output
    assert (
        "best 0.9500 found at 5m00s of study time (trial #2); "
        "no improvement for the last 8m00s / 3 trials" in text.output
    )


def test_status_of_a_users_objective_reads_max_epochs_from_storage_alone(
    tmp_path: Path, storage_url: str
) -> None:
    """objective.max_epochs as recorded, the latest allowed change winning; no code imported."""
    study = sleepy_file(tmp_path, max_epochs=6)
    create = ["create", "--study", str(study), "--trials", "4", "--storage", storage_url]
    assert CliRunner().invoke(main, create).exit_code == 0
    study.write_text(study.read_text().replace("max_epochs = 6", "max_epochs = 8"))
    changed = CliRunner().invoke(main, [*create, "--allow-changed-spec"])
    assert changed.exit_code == 0, changed.output
    (tmp_path / "sleepy.py").unlink()  # status reads storage alone
    add_trials(storage_url, "sleepy", [stored(0, "COMPLETE", -0.2, 8, 0, 30)])
    shown, text = status(study, storage_url)
    assert (shown["epochs_run"], shown["max_epochs"], shown["epochs_full"]) == (8, 8, 32)
    assert "epochs: 8 run of the 32 that 4 full trials would cost (25 %)" in text.output
    assert "best -0.2000 found at 30.0s of study time (trial #0); no trial has finished since" in (
        text.output
    )


def test_status_without_a_recorded_max_epochs_omits_the_comparison(
    make_study: Callable[..., Path], storage_url: str
) -> None:
    """A study made without hpsearch's manifest: the epochs run, and no guessed total."""
    path = make_study(max_epochs=20)
    study = optuna.create_study(study_name="tiny", storage=storage_url, direction="maximize")
    study.set_user_attr(_keys.TARGET_TRIALS, 10)
    add_trials(storage_url, "tiny", [stored(0, "PRUNED", None, 3, 0, 20)])
    shown, text = status(path, storage_url)
    assert (shown["epochs_run"], shown["max_epochs"], shown["epochs_full"]) == (3, None, None)
    assert (shown["best_trial"], shown["anytime"]) == (None, [])
    assert "epochs: 3 run\n" in text.output and "full trials" not in text.output
    assert "found at" not in text.output
