"""`hpsearch status`: running, stale and failed trials, from storage alone, as text and JSON."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

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
