"""Workers that die, wait or are interrupted: no trial lost, stranded RUNNING or stalled.

Real `hpsearch` processes, real kill -9 and SIGINT, on SQLite with a 1 s heartbeat and a 3 s
grace period.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from hpsearch.storages._rdb import open_storage
from hpsearch.storages._tracking import TrackingRDBStorage
from processes import BEAT, hpsearch, sleepy_study, wait_until
from processes import sleepy_trials as trials


@pytest.fixture
def sleepy(tmp_path: Path) -> Callable[..., Path]:
    """A study file of the sleepy objective, with its code beside it."""
    return functools.partial(sleepy_study, tmp_path)


@pytest.mark.slow
def test_workers_stop_at_the_total_and_a_failure_reopens_its_place(
    sleepy: Callable[..., Path], storage: str
) -> None:
    """Three workers, seven trials: finished + running never exceed the total, even at the end.

    Without the count of running trials, the two workers still busy when the seventh trial
    finishes would each add one (the old bound was workers - 1). Trial 5 raises: its place
    opens again, so the total is still reached.
    """
    url = storage
    study = sleepy(epoch=0.1, jitter=0.4, fail_trials=(5,))
    args = ["run", "--study", str(study), "--trials", "7", "--workers", "3", "--threads", "1"]
    out = finish(hpsearch(*args, "--device", "cpu", "--no-progress", url=url), timeout=240)
    states = [t.state.name for t in trials(url)]
    assert states.count("COMPLETE") == 7, out
    assert states.count("FAIL") == 1 and "RUNNING" not in states, states


def worker(study: Path, url: str, beat: tuple[str, ...] = BEAT) -> subprocess.Popen[str]:
    """`hpsearch worker` on the CPU with a fast heartbeat."""
    args = ["worker", "--study", str(study), "--device", "cpu", "--no-progress", *beat]
    return hpsearch(*args, url=url)


def finish(proc: subprocess.Popen[str], timeout: float = 120.0) -> str:
    """The process's output once it exits, which must be 0."""
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def create(study: Path, url: str, total: int) -> None:
    """`hpsearch create` the study with its total."""
    finish(hpsearch("create", "--study", str(study), "--trials", str(total), url=url))


@pytest.mark.slow
def test_a_worker_killed_while_waiting_at_a_round_boundary_stalls_nothing(
    sleepy: Callable[..., Path], tmp_path: Path
) -> None:
    """Its trial beats while it waits, goes stale when it dies, is failed and retried."""
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    study = sleepy(slow_epoch=3.0, slow_trials=(0,), sampler="narrowing",
                   sampler_keys="trials_per_round = 2\nmin_complete = 1\nmin_keep = 1")  # fmt: skip
    create(study, url, 6)
    first = worker(study, url)
    wait_until(lambda: bool(trials(url)))  # trial 0, the slow one
    second = worker(study, url)  # trial 1, then trial 2 waits for trial 0 at round 1's start

    def waiting() -> bool:
        found = [t for t in trials(url) if t.number == 2 and t.state.name == "RUNNING"]
        return bool(found) and "narrowing_round" not in found[0].user_attrs

    wait_until(waiting)
    second.kill()  # kill -9 while it waits inside the new trial
    second.communicate()
    started = time.monotonic()
    finish(first)
    stored = trials(url)
    assert not [t for t in stored if t.state.name == "RUNNING"]
    assert stored[2].state.name == "FAIL"
    retry = [t for t in stored if t.system_attrs.get("failed_trial") == 2]
    assert retry and retry[0].state.name == "COMPLETE"
    assert sum(t.state.name == "COMPLETE" for t in stored) >= 6
    assert time.monotonic() - started < 45  # wait_timeout is 600 s: nothing waited for it


@pytest.mark.slow
def test_a_slow_live_trial_at_a_boundary_gives_every_worker_the_same_ranges(
    sleepy: Callable[..., Path], tmp_path: Path
) -> None:
    """Round 1 is computed once and stored; every trial of it records those ranges."""
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    keys = "trials_per_round = 3\nmin_complete = 1\nmin_keep = 1\nwait_timeout = 1"
    study = sleepy(slow_epoch=2.0, slow_trials=(0,), sampler="narrowing", sampler_keys=keys)
    create(study, url, 9)
    procs = [worker(study, url) for _ in range(3)]
    for proc in procs:
        finish(proc)
    stored = trials(url)
    by_round: dict[int, list[dict[str, object]]] = {}
    for trial in stored:
        by_round.setdefault(trial.user_attrs["narrowing_round"], []).append(
            trial.user_attrs["narrowing_ranges"]
        )
    assert len(by_round) >= 3  # three workers may overshoot the total into round 3
    for ranges in by_round.values():
        assert all(r == ranges[0] for r in ranges)  # identical within each round
    attrs = optuna.load_study(study_name="sleepy", storage=url).user_attrs
    assert attrs["narrowing_round:1"]["ranges"] == by_round[1][0]


@pytest.mark.slow
def test_narrowing_under_hyperband_ranks_the_whole_study(
    sleepy: Callable[..., Path], tmp_path: Path
) -> None:
    """Hyperband hands the sampler one bracket's trials; the round is still made from all."""
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    keys = "trials_per_round = 6\nmin_complete = 100"  # keeps the ranges, and says from how many
    study = sleepy(sampler="narrowing", sampler_keys=keys, pruner="hyperband")
    finish(hpsearch("run", "--study", str(study), "--trials", "7", "--no-progress", url=url))
    notes = trials(url)[6].user_attrs["narrowing_notes"]
    assert any("of 6 earlier trials completed" in note for note in notes), notes


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # ask() outside optimize
def test_a_trial_belongs_to_the_process_that_runs_it(tmp_path: Path) -> None:
    """A retry queued by one worker and run by another is not failed by the first's Ctrl-C."""
    url = f"sqlite:///{tmp_path / 'own.db'}"
    queuer, runner = (open_storage(url, heartbeat=1, grace_period=3) for _ in range(2))
    assert isinstance(queuer, TrackingRDBStorage) and isinstance(runner, TrackingRDBStorage)
    study = optuna.create_study(study_name="own", storage=queuer)
    study.enqueue_trial({"x": 0.5})  # as the stale-trial retry queues one: WAITING
    taken = optuna.load_study(study_name="own", storage=runner).ask()  # the runner takes it
    assert queuer.fail_own_running() == []  # the queuer's Ctrl-C: nothing of its own runs
    assert runner.get_trial(taken._trial_id).state.name == "RUNNING"
    assert runner.fail_own_running() == [taken._trial_id]


@pytest.mark.slow
def test_a_worker_killed_near_the_total_leaves_nothing_running(
    sleepy: Callable[..., Path], tmp_path: Path
) -> None:
    """The survivor reaches the total first, then waits out the grace period for the dead trial.

    Optuna checks for stale trials only when a trial starts; here the last one starts before
    the dead worker's trial goes stale, so only the check at the total catches it.
    """
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    beat = ("--heartbeat", "1", "--grace-period", "5")
    study = sleepy(slow_epoch=4.0, slow_trials=(0, 1))
    create(study, url, 2)
    first = worker(study, url, beat)  # trial 0: two slow epochs
    wait_until(lambda: any(t.state.name == "RUNNING" for t in trials(url)))
    second = worker(study, url, beat)  # trial 1, while the first is busy
    wait_until(lambda: len(trials(url)) == 2 and bool(trials(url)[0].intermediate_values))
    second.kill()  # trial 1 is left RUNNING; trial 0 ends in under 4 s, before it goes stale
    second.communicate()
    finish(first)
    stored = trials(url)
    assert not [t for t in stored if t.state.name == "RUNNING"]
    assert stored[1].state.name == "FAIL"
    retry = [t for t in stored if t.system_attrs.get("failed_trial") == 1]
    assert retry and retry[0].state.name == "COMPLETE"


@pytest.mark.slow
def test_run_at_its_total_fails_a_stale_trial_and_runs_its_retry(
    sleepy: Callable[..., Path], tmp_path: Path
) -> None:
    """A dead worker's RUNNING trial is cleaned up when the next command starts."""
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    study = sleepy(slow_epoch=30.0, slow_trials=(2,))
    create(study, url, 3)
    lone = worker(study, url)
    wait_until(lambda: any(t.number == 2 and t.state.name == "RUNNING" for t in trials(url)))
    lone.kill()
    lone.communicate()
    time.sleep(4)  # past the grace period
    out = finish(hpsearch(
        "run", "--study", str(study), "--trials", "2", "--no-progress", *BEAT, url=url
    ))  # fmt: skip
    stored = trials(url)
    assert stored[2].state.name == "FAIL", out
    assert stored[-1].system_attrs.get("failed_trial") == 2
    assert stored[-1].state.name == "COMPLETE"
    assert not [t for t in stored if t.state.name == "RUNNING"]


QUEUER = """\
import signal, sys, time
import optuna
from hpsearch.storages._rdb import fail_stale_trials, open_storage

storage = open_storage(sys.argv[1], heartbeat=1, grace_period=3)
study = optuna.load_study(study_name="sleepy", storage=storage)


def stop(signum, frame):
    storage.fail_own_running()  # what a worker's Ctrl-C does
    sys.exit(130)


signal.signal(signal.SIGINT, stop)
fail_stale_trials(study)  # queues the dead trial's retry: this process creates it
print("queued", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
def test_a_workers_ctrl_c_spares_the_retry_another_worker_runs(
    sleepy: Callable[..., Path], tmp_path: Path
) -> None:
    """Seen: B queued a dead trial's retry, C ran it, Ctrl-C to B failed C's trial."""
    url = f"sqlite:///{tmp_path / 'faults.db'}"
    study = sleepy(slow_epoch=2.0, slow_trials=(0, 1))
    create(study, url, 1)
    dead = worker(study, url)
    wait_until(lambda: any(t.state.name == "RUNNING" for t in trials(url)))
    dead.kill()  # trial 0 stays RUNNING until its heartbeat is stale
    dead.communicate()
    time.sleep(4)
    (tmp_path / "queuer.py").write_text(QUEUER)
    queuer = subprocess.Popen(
        [sys.executable, str(tmp_path / "queuer.py"), url], stdout=subprocess.PIPE, text=True
    )
    assert queuer.stdout is not None and queuer.stdout.readline().strip() == "queued"
    runner = worker(study, url)  # takes the queued retry (trial 1, two slow epochs)
    wait_until(lambda: any(t.number == 1 and t.state.name == "RUNNING" for t in trials(url)))
    queuer.send_signal(signal.SIGINT)
    assert queuer.wait(timeout=30) == 130
    out = finish(runner)
    retry = trials(url)[1]
    assert retry.system_attrs.get("failed_trial") == 0
    assert retry.state.name == "COMPLETE", out


@pytest.mark.slow
def test_the_timeout_reaches_every_worker(sleepy: Callable[..., Path], tmp_path: Path) -> None:
    """`run --timeout` with several workers stops them all (the workers once ignored it)."""
    url = f"sqlite:///{tmp_path / 'timeout.db'}"
    study = sleepy(epoch=0.2)
    args = ["run", "--study", str(study), "--trials", "1000", "--workers", "2", "--threads", "1"]
    out = finish(hpsearch(*args, "--timeout", "3", "--device", "cpu", url=url), timeout=120)
    stored = trials(url)
    assert 0 < len(stored) < 100, out
    assert {t.user_attrs["worker"] for t in stored} == {"w0", "w1"}
    assert "RUNNING" not in [t.state.name for t in stored]


@pytest.mark.slow
def test_a_live_trial_failed_by_another_worker_costs_only_that_trial(
    sleepy: Callable[..., Path], tmp_path: Path
) -> None:
    """After a database outage longer than the grace period, another worker may fail a live
    trial as stale (and queue its retry); its own worker's result is then refused by Optuna.
    The worker goes on to the total instead of crashing. Here the test fails the trial, as
    that other worker's stale check does."""
    url = f"sqlite:///{tmp_path / 'taken.db'}"
    study = sleepy(slow_epoch=1.0, slow_trials=(0,), max_epochs=4)
    create(study, url, 3)
    proc = worker(study, url)
    wait_until(lambda: any(t.intermediate_values for t in trials(url)))  # trial 0 mid-run
    storage = open_storage(url)
    storage.set_trial_state_values(trials(url)[0]._trial_id, optuna.trial.TrialState.FAIL)
    out = finish(proc)
    assert "Traceback" not in out and "Cannot tell" not in out, out
    states = [t.state.name for t in trials(url)]
    assert states[0] == "FAIL" and states.count("COMPLETE") == 3, states
