"""Workers that die, wait, or lose their database: trials lost, stranded, redone, and stalls.

Each scenario runs real `hpsearch worker` / `hpsearch run` processes on a tiny objective
(a user's function that sleeps per epoch), with a 1 s heartbeat and a 3 s grace period, kills
or restarts things at chosen moments, and reads the outcome from storage:

- lost: parameter sets whose trial failed and was never completed by a retry
- stranded: trials left RUNNING at the end
- redone: retries of failed trials (work done twice)
- stall: after a kill, the seconds until the dead worker's trial was failed (the grace period
  plus at most a poll); otherwise the longest gap between two trials finishing

    python benchmarks/faults.py          # PostgreSQL scenarios too when HPSEARCH_TEST_POSTGRES,
                                         # HPSEARCH_TEST_PGCTL and HPSEARCH_TEST_PGDATA are set
"""

from __future__ import annotations

import datetime
import itertools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna

from hpsearch.storages._rdb import open_storage

GRACE = 3
BEAT = ("--heartbeat", "1", "--grace-period", str(GRACE))
OBJECTIVE = """
import time


def objective(params, ctx):
    slow = ctx.trial_number in ctx.config.get("slow_trials", [])
    for epoch in range(1, ctx.max_epochs + 1):
        time.sleep(ctx.config["slow_epoch" if slow else "epoch"])
        ctx.report(epoch, score=-((params["x"] - 0.3) ** 2) - 0.1 / epoch)
    return -((params["x"] - 0.3) ** 2)
"""
STUDY = """\
seed = 1
[objective]
entry = "sleepy.py:objective"
metric = "score"
direction = "maximize"
max_epochs = 2
[objective.config]
epoch = {epoch}
slow_epoch = {slow_epoch}
slow_trials = {slow}
[search]
x = {{ low = 0.0, high = 1.0 }}
[sampler]
kind = "{sampler}"
{keys}
[pruner]
kind = "none"
"""


def study_file(
    folder: Path,
    epoch: float = 0.05,
    slow_epoch: float = 0.05,
    slow: tuple[int, ...] = (),
    sampler: str = "random",
    keys: str = "",
) -> Path:
    """A study of the sleepy objective in `folder`."""
    (folder / "sleepy.py").write_text(OBJECTIVE)
    path = folder / "sleepy.toml"
    text = STUDY.format(
        epoch=epoch, slow_epoch=slow_epoch, slow=list(slow), sampler=sampler, keys=keys
    )
    path.write_text(text)
    return path


def cli(*args: str, url: str) -> subprocess.Popen[str]:
    """The real CLI in its own process."""
    env = dict(os.environ, HPSEARCH_STORAGE=url, HPSEARCH_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch", *args], env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def worker(study: Path, url: str, beat: tuple[str, ...] = BEAT) -> subprocess.Popen[str]:
    """One `hpsearch worker`."""
    return cli("worker", "--study", str(study), "--device", "cpu", "--no-progress", *beat, url=url)


def trials(url: str) -> list[optuna.trial.FrozenTrial]:
    """The sleepy study's trials (none while it is still being created)."""
    try:
        return optuna.load_study(study_name="sleepy", storage=open_storage(url)).trials
    except KeyError:
        return []


def wait_until(check: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll until `check()` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("scenario did not reach its moment")
        time.sleep(0.1)


def outcome(url: str, killed_at: datetime.datetime | None = None) -> dict[str, float]:
    """Lost, stranded, redone and the longest stretch with nothing finishing."""
    stored = trials(url)
    completed = {t.number for t in stored if t.state.name in ("COMPLETE", "PRUNED")}
    retried = {
        t.system_attrs["failed_trial"]: t for t in stored if "failed_trial" in t.system_attrs
    }
    lost = 0
    for trial in stored:
        if trial.state.name != "FAIL":
            continue
        retry = retried.get(trial.number)
        while retry is not None and retry.number not in completed:
            retry = retried.get(retry.number)
        lost += retry is None
    ends = sorted(t.datetime_complete for t in stored if t.datetime_complete)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(ends)]
    if killed_at is not None:  # how long the dead worker's trial went unnoticed
        failed = [t.datetime_complete for t in stored if t.state.name == "FAIL"]
        gaps = [(min(f for f in failed if f) - killed_at).total_seconds()] if failed else []
    return {
        "finished": len(completed),
        "unique": len({t.params.get("x") for t in stored if t.number in completed}),
        "lost": lost,
        "stranded": sum(t.state.name == "RUNNING" for t in stored),
        "redone": len(retried),
        "stall": max(gaps, default=0.0),
    }


def waiting_at_boundary(trial: optuna.trial.FrozenTrial) -> bool:
    """Trial 2 is created and RUNNING but has no round yet: its worker waits for trial 0."""
    return trial.number == 2 and trial.state.name == "RUNNING" and not trial.user_attrs


def boundary_kill(folder: Path, url: str) -> dict[str, float]:
    """kill -9 a worker while it waits at a narrowing round boundary."""
    keys = "trials_per_round = 2\nmin_complete = 1\nmin_keep = 1"
    study = study_file(folder, slow_epoch=3.0, slow=(0,), sampler="narrowing", keys=keys)
    cli("create", "--study", str(study), "--trials", "6", url=url).wait()
    first = worker(study, url)
    wait_until(lambda: bool(trials(url)))
    second = worker(study, url)
    wait_until(lambda: any(waiting_at_boundary(t) for t in trials(url)))
    second.kill()
    killed_at = datetime.datetime.now()  # Optuna stores naive local times
    second.wait()
    first.wait(timeout=300)
    return outcome(url, killed_at)


def slow_at_boundary(folder: Path, url: str) -> dict[str, float]:
    """A live trial slower than wait_timeout at a round boundary, three workers."""
    keys = "trials_per_round = 3\nmin_complete = 1\nmin_keep = 1\nwait_timeout = 1"
    study = study_file(folder, slow_epoch=2.0, slow=(0,), sampler="narrowing", keys=keys)
    cli("create", "--study", str(study), "--trials", "9", url=url).wait()
    procs = [worker(study, url) for _ in range(3)]
    for proc in procs:
        proc.wait(timeout=300)
    result = outcome(url)
    by_round: dict[int, list[object]] = {}
    for trial in trials(url):
        by_round.setdefault(trial.user_attrs["narrowing_round"], []).append(
            trial.user_attrs["narrowing_ranges"]
        )
    result["rounds disagreeing"] = sum(any(r != v[0] for r in v) for v in by_round.values())
    return result


def killed_near_total(folder: Path, url: str) -> dict[str, float]:
    """kill -9 a worker mid-trial just before the survivor reaches the total."""
    beat = ("--heartbeat", "1", "--grace-period", "5")
    study = study_file(folder, slow_epoch=4.0, slow=(0, 1))
    cli("create", "--study", str(study), "--trials", "2", url=url).wait()
    first = worker(study, url, beat)
    wait_until(lambda: any(t.state.name == "RUNNING" for t in trials(url)))
    second = worker(study, url, beat)
    wait_until(lambda: len(trials(url)) == 2 and bool(trials(url)[0].intermediate_values))
    second.kill()
    killed_at = datetime.datetime.now()  # Optuna stores naive local times
    second.wait()
    first.wait(timeout=300)
    return outcome(url, killed_at)


def postgres_restart(folder: Path, url: str, down_s: float) -> dict[str, float]:
    """Stop PostgreSQL mid-epoch for `down_s` seconds under one running study."""
    pg_ctl = os.environ["HPSEARCH_TEST_PGCTL"].split()
    pg_data = os.environ["HPSEARCH_TEST_PGDATA"]
    study = study_file(folder, epoch=1.0)
    run = cli("run", "--study", str(study), "--trials", "3", "--no-progress",
              "--heartbeat", "1", "--grace-period", "20", url=url)  # fmt: skip
    wait_until(lambda: any(t.intermediate_values for t in trials(url)))
    subprocess.run(
        [*pg_ctl, "-D", pg_data, "-m", "fast", "-w", "stop"], check=True, capture_output=True
    )
    time.sleep(down_s)
    log = str(Path(pg_data).parent / "log")
    subprocess.run(
        [*pg_ctl, "-D", pg_data, "-w", "-l", log, "start"], check=True, capture_output=True
    )
    run.wait(timeout=300)
    return outcome(url)


def many_workers(folder: Path, url: str, count: int) -> dict[str, float]:
    """`count` workers to a total of 40 on one storage."""
    study = study_file(folder, epoch=0.02)
    cli("create", "--study", str(study), "--trials", "40", url=url).wait()
    procs = [worker(study, url) for _ in range(count)]
    for proc in procs:
        proc.wait(timeout=600)
    return outcome(url)


def fresh_postgres() -> str:
    """A new database on the test server."""
    import sqlalchemy

    url = os.environ["HPSEARCH_TEST_POSTGRES"]
    name = f"faults_{uuid.uuid4().hex[:10]}"
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    """Run every scenario and print one Markdown table."""
    scenarios: list[tuple[str, str, Callable[[Path, str], dict[str, float]]]] = [
        ("kill -9 while waiting at a round boundary", "SQLite", boundary_kill),
        (
            "live trial slower than wait_timeout at a boundary, 3 workers",
            "SQLite",
            slow_at_boundary,
        ),
        ("worker killed just before the total", "SQLite", killed_near_total),
        ("4 workers to 40", "SQLite", lambda f, u: many_workers(f, u, 4)),
    ]
    if os.environ.get("HPSEARCH_TEST_PGDATA"):
        scenarios += [
            ("PostgreSQL down 1 s mid-epoch (grace 20 s)", "PostgreSQL",
             lambda f, u: postgres_restart(f, u, 1.0)),
            ("8 workers to 40", "PostgreSQL", lambda f, u: many_workers(f, u, 8)),
        ]  # fmt: skip
    print(
        "| scenario | storage | finished | unique | lost | stranded | redone | longest stall (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for title, kind, scenario in scenarios:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            url = f"sqlite:///{folder / 'faults.db'}" if kind == "SQLite" else fresh_postgres()
            if kind == "SQLite":
                open_storage(url)  # tables and WAL once, before the processes race for them
            r = scenario(folder, url)
            extra = (
                f" ({r['rounds disagreeing']:.0f} rounds disagreeing)"
                if "rounds disagreeing" in r
                else ""
            )
            counts = " | ".join(f"{r[k]:.0f}" for k in ("finished", "unique", "lost", "stranded"))
            print(
                f"| {title}{extra} | {kind} | {counts} | {r['redone']:.0f} | {r['stall']:.1f} |",
                flush=True,
            )
    print(f"\nheartbeat 1 s, grace period {GRACE} s (5 s for the kill near the total)")


if __name__ == "__main__":
    main()
