"""Parallel worker processes on SQLite and PostgreSQL: totals, kills, Ctrl-C, database restarts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest

from hpsearch.errors import UsageError
from hpsearch.study._workers import parse_gpus, plan_workers, visible_gpu
from processes import postgres_url
from repo import TEST_DATA

STUDY = """\
seed = 5
[data]
train_size = 2400
valid_size = 600
[model]
hidden = [64]
[training]
max_epochs = {epochs}
patience = {epochs}
[search]
lr = {{ low = 1e-4, high = 1e-2, log = true }}
batch_norm = {{ choices = [true, false] }}
[sampler]
kind = "random"
[pruner]
kind = "none"
"""


def study_file(tmp_path: Path, epochs: int = 1, name: str = "par") -> Path:
    """A tiny MNIST study; `epochs` sets how long each trial takes."""
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.format(epochs=epochs))
    return path


def hpsearch(*args: str, storage: str, **popen: object) -> subprocess.Popen[str]:
    """Start the real CLI as a subprocess with the storage URL in its environment."""
    env = dict(os.environ, HPSEARCH_STORAGE=storage, HPSEARCH_OFFLINE="1")
    cmd = [sys.executable, "-m", "hpsearch", *args, "--data-dir", str(TEST_DATA), "--no-progress"]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )  # type: ignore[call-overload]


def run_study_cli(
    path: Path, trials: int, *extra: str, storage: str, **popen: object
) -> subprocess.Popen[str]:
    """`hpsearch run` of a study file on the CPU up to `trials`, with any extra options."""
    args = ("run", "--study", str(path), "--trials", str(trials), "--device", "cpu", *extra)
    return hpsearch(*args, storage=storage, **popen)


def trials_of(url: str, name: str = "par") -> list[optuna.trial.FrozenTrial]:
    """The stored trials of a study (through hpsearch's storage: the run may be creating it)."""
    from hpsearch.storages._rdb import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url)).trials


def wait_for_running(
    url: str, timeout: float = 120.0, name: str = "par", worker: str | None = None
) -> optuna.trial.FrozenTrial:
    """Block until some trial (of `worker`, if given) is RUNNING and has reported an epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            for trial in trials_of(url, name):
                mine = worker is None or trial.user_attrs.get("worker") == worker
                if mine and trial.state.name == "RUNNING" and trial.intermediate_values:
                    return trial
        except KeyError:
            pass
        time.sleep(0.2)
    raise AssertionError("no trial started running in time")


def finish(proc: subprocess.Popen[str], timeout: float = 240.0) -> str:
    """Wait for a subprocess and return its output."""
    out, _ = proc.communicate(timeout=timeout)
    return out


@pytest.mark.slow
def test_k_processes_reach_the_total(tmp_path: Path, storage: str) -> None:
    # --threads 2: not the default share of a 2-to-8-core machine among 4 workers
    proc = run_study_cli(
        study_file(tmp_path), 12, "--workers", "4", "--threads", "2", storage=storage
    )
    out = finish(proc)
    assert proc.returncode == 0, out
    trials = trials_of(storage)
    assert {t.user_attrs["threads"] for t in trials} == {2}
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 12  # the total is exact (counted under the study's write lock)
    assert len({t.number for t in trials}) == len(trials)
    assert not [t for t in trials if t.state.name in ("RUNNING", "FAIL")]
    assert len({t.user_attrs["seed"] for t in trials}) == len(trials)
    assert len({t.params["lr"] for t in trials}) == len(trials), "workers replayed draws"
    assert out.count("12/12 trials finished") == 1, out  # the run's summary; workers print none


@pytest.mark.slow
def test_a_finished_study_starts_no_more_trials(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'done.db'}"
    path = study_file(tmp_path)
    assert run_study_cli(path, 2, storage=storage).wait(timeout=240) == 0
    late = [
        hpsearch("worker", "--study", str(path), "--device", "cpu", storage=storage),
        run_study_cli(path, 2, "--workers", "1", storage=storage),
    ]
    for proc in late:
        out = finish(proc)
        assert proc.returncode == 0, out
    assert len(trials_of(storage)) == 2  # Optuna's stop callback alone would start one each


@pytest.mark.slow
def test_killed_worker_trial_fails_and_is_retried(tmp_path: Path, storage: str) -> None:
    path = study_file(tmp_path, epochs=40)
    beat = ("--heartbeat", "1", "--grace-period", "3")
    from click.testing import CliRunner

    from hpsearch.cli import main

    result = CliRunner().invoke(
        main, ["create", "--study", str(path), "--trials", "4", "--storage", storage]
    )
    assert result.exit_code == 0, result.output
    victim = hpsearch("worker", "--study", str(path), "--device", "cpu", *beat, storage=storage)
    running = wait_for_running(storage)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert trials_of(storage)[running.number].state.name == "RUNNING"  # nobody marked it yet
    rescuer = hpsearch("worker", "--study", str(path), "--device", "cpu", *beat, storage=storage)
    out = finish(rescuer)
    assert rescuer.returncode == 0, out
    trials = trials_of(storage)
    assert trials[running.number].state.name == "FAIL"
    retried = [t for t in trials if t.system_attrs.get("failed_trial") == running.number]
    assert retried and retried[0].state.name == "COMPLETE"
    assert retried[0].params == running.params
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4
    assert not [t for t in trials if t.state.name == "RUNNING"]


@pytest.mark.slow
def test_ctrl_c_marks_the_cut_trial_failed_and_resume_finishes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ctrlc.db'}"
    path = study_file(tmp_path, epochs=30)
    proc = run_study_cli(path, 3, storage=url)
    running = wait_for_running(url)
    proc.send_signal(signal.SIGINT)
    out = finish(proc)
    assert proc.returncode == 130, out
    assert "re-run the same command to resume" in out and "Traceback" not in out
    assert trials_of(url)[running.number].state.name == "FAIL"
    assert not [t for t in trials_of(url) if t.state.name == "RUNNING"]
    again = run_study_cli(path, 3, storage=url)
    out = finish(again)
    assert again.returncode == 0, out
    assert sum(t.state.name == "COMPLETE" for t in trials_of(url)) == 3


@pytest.mark.parametrize("workers", [["--workers", "2"], []], ids=["two", "default"])
@pytest.mark.slow
def test_ctrl_c_stops_all_workers(tmp_path: Path, workers: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'ctrlc.db'}"
    path = study_file(tmp_path, epochs=30)
    proc = run_study_cli(
        path,
        20,
        *workers,
        storage=url,
        start_new_session=True,
        # as from a terminal: a test run started in the background (`pytest &`) would otherwise
        # hand SIGINT down as ignored, and Python keeps it ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    wait_for_running(url)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to the whole group
    out = finish(proc, timeout=120)
    assert proc.returncode == 130, out
    assert out.count("interrupted:") == 1, out  # the run says it; its workers do not
    trials = trials_of(url)
    assert trials and not [t for t in trials if t.state.name == "RUNNING"]
    assert any(t.state.name == "FAIL" for t in trials)


@pytest.mark.slow
def test_ctrl_c_to_a_worker_reads_as_an_interrupt(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ctrlc.db'}"
    path = study_file(tmp_path, epochs=30)
    proc = run_study_cli(path, 3, "--workers", "2", storage=url)
    wait_for_running(url, worker="w1")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1, children  # worker 0 is the run's own process
    argv = Path(f"/proc/{children[0]}/cmdline").read_bytes().split(b"\0")
    assert argv[argv.index(b"--tag") + 1] == b"w1"
    os.kill(int(children[0]), signal.SIGINT)  # one worker only, not the run itself
    out = finish(proc, timeout=240)
    assert proc.returncode == 130, out
    assert "re-run the same command to resume" in out and "fix it" not in out
    trials = trials_of(url)
    assert [t.user_attrs["worker"] for t in trials if t.state.name == "FAIL"] == ["w1"]
    assert {t.user_attrs["worker"] for t in trials} == {"w0", "w1"}
    assert not [t for t in trials if t.state.name == "RUNNING"]


@pytest.mark.slow
def test_run_defaults_to_one_single_thread_worker_per_core(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'default.db'}"
    # trials of a few seconds: the run's own worker 0 starts first and would run 1-epoch ones all
    proc = run_study_cli(study_file(tmp_path, epochs=10), 6, storage=url)
    out = finish(proc)
    assert proc.returncode == 0, out
    trials = trials_of(url)
    assert sum(t.state.name == "COMPLETE" for t in trials) == 6
    cores = len(os.sched_getaffinity(0))
    if cores == 1:
        assert {t.user_attrs["worker"] for t in trials} == {f"pid {proc.pid}"}
        return
    assert {t.user_attrs["threads"] for t in trials} == {1}
    assert {t.user_attrs["worker"] for t in trials} <= {f"w{i}" for i in range(cores)}
    assert len({t.user_attrs["worker"] for t in trials}) > 1


@pytest.mark.parametrize(
    ("extra", "affinity"), [(["--workers", "1"], None), ([], {0})], ids=["workers-1", "one-core"]
)
@pytest.mark.slow
def test_one_worker_or_one_core_runs_in_the_process_itself(
    tmp_path: Path, extra: list[str], affinity: set[int] | None
) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    pin = None if affinity is None else (lambda: os.sched_setaffinity(0, affinity))
    proc = run_study_cli(study_file(tmp_path), 2, *extra, storage=url, preexec_fn=pin)
    out = finish(proc)
    assert proc.returncode == 0, out
    assert {t.user_attrs["worker"] for t in trials_of(url)} == {f"pid {proc.pid}"}


SLOW_START = """\
\"\"\"A sleeping objective whose import never ends in an `hpsearch worker` process.\"\"\"
import os
import sys
import time
from pathlib import Path

if "worker" in sys.argv:
    Path(os.environ["HPSEARCH_TEST_MARK"]).touch()
    time.sleep(600)


def objective(params, ctx):
    for epoch in range(1, ctx.max_epochs + 1):
        time.sleep(ctx.config["epoch"])
        ctx.report(epoch, score=params["x"])
    return params["x"]
"""


@pytest.mark.slow
def test_the_run_ends_a_worker_still_starting_once_the_study_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from processes import hpsearch as cli
    from processes import sleepy_study, sleepy_trials

    study = sleepy_study(tmp_path, epoch=2.0)  # the run's own trial: 2 epochs of 2 s
    (tmp_path / "slowstart.py").write_text(SLOW_START)
    study.write_text(study.read_text().replace("sleepy.py:", "slowstart.py:"))
    mark = tmp_path / "worker-importing"
    monkeypatch.setenv("HPSEARCH_TEST_MARK", str(mark))
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    args = ["run", "--study", str(study), "--trials", "1", "--workers", "2", "--device", "cpu"]
    proc = cli(*args, "--no-progress", url=url)
    out, _ = proc.communicate(timeout=120)  # without the stop: 600 s of the worker's import
    assert proc.returncode == 0, out
    assert mark.exists(), "worker 1 was not starting when the study was done"
    assert "1/1 trials finished" in out and "exited with" not in out, out
    assert [(t.state.name, t.user_attrs["worker"]) for t in sleepy_trials(url)] == [
        ("COMPLETE", "w0")
    ]


# Python's own start-up (site) of a worker process that never ends: where SIGINT printed a
# 'Fatal Python error: init_import_site' traceback
SLOW_SITE = """\
import os, sys, time
from pathlib import Path
if "worker" in sys.argv:
    Path(os.environ["HPSEARCH_TEST_MARK"]).touch()
    time.sleep(600)
"""
FAILING = """\
import os, time
from pathlib import Path
def objective(params, ctx):
    while not Path(os.environ["HPSEARCH_TEST_MARK"]).exists():  # worker 1 is starting up
        time.sleep(0.05)
    raise ValueError("planned failure")
"""


@pytest.mark.slow
def test_a_run_that_fails_stops_a_starting_worker_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its own trial fails (max_failures = 1) while worker 1 still starts: no word from it."""
    from processes import hpsearch as cli
    from processes import sleepy_study, sleepy_trials

    study = sleepy_study(tmp_path)
    (tmp_path / "failing.py").write_text(FAILING)
    text = study.read_text().replace("sleepy.py:", "failing.py:")
    study.write_text("max_failures = 1\n" + text)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_SITE)
    mark = tmp_path / "worker-starting"
    monkeypatch.setenv("HPSEARCH_TEST_MARK", str(mark))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    args = ["run", "--study", str(study), "--trials", "2", "--workers", "2", "--device", "cpu"]
    proc = cli(*args, "--no-progress", url=url)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert mark.exists(), "worker 1 was not starting when the run failed"
    assert "KeyboardInterrupt" not in out and "Fatal" not in out, out  # the worker said nothing
    assert out.count("Traceback") == 1, out  # the failed trial's own, as any failed trial prints
    assert out.strip().splitlines()[-1].startswith("Error: stopped after 1 failed trial"), out
    assert [t.state.name for t in sleepy_trials(url)] == ["FAIL"]


@pytest.mark.slow
def test_the_run_waits_for_a_worker_whose_trial_runs(tmp_path: Path) -> None:
    from processes import hpsearch as cli
    from processes import sleepy_study, sleepy_trials

    # the run's trial 0 takes 2 x 2.5 s, worker 1's trial 1 (started meanwhile) 2 x 6 s; at its
    # 3 s timeout the run's own worker stops after trial 0 while trial 1 still runs
    study = sleepy_study(tmp_path, epoch=2.5, slow_epoch=6.0, slow_trials=(1,))
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    args = ["run", "--study", str(study), "--trials", "2", "--workers", "2", "--device", "cpu"]
    proc = cli(*args, "--timeout", "3", "--no-progress", url=url)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    trials = sleepy_trials(url)
    assert [(t.state.name, t.user_attrs["worker"]) for t in trials] == [
        ("COMPLETE", "w0"),
        ("COMPLETE", "w1"),
    ]
    assert "2/2 trials finished" in out and "exited with" not in out, out


def postgres_server() -> tuple[str, list[str], str]:
    """The CI PostgreSQL server's URL, its pg_ctl command line and its data folder."""
    url = postgres_url()
    pg_ctl, pg_data = os.environ.get("HPSEARCH_TEST_PGCTL"), os.environ.get("HPSEARCH_TEST_PGDATA")
    if not (url and pg_ctl and pg_data):
        pytest.skip("needs the CI PostgreSQL server (HPSEARCH_TEST_POSTGRES, _PGCTL, _PGDATA)")
    return url, pg_ctl.split(), pg_data


def restart_postgres(pg_ctl: list[str], pg_data: str, down_s: float) -> None:
    """Stop the server (fast: connections are cut), stay down `down_s` seconds, start it."""
    subprocess.run(
        [*pg_ctl, "-D", pg_data, "-m", "fast", "-w", "stop"], check=True, capture_output=True
    )
    time.sleep(down_s)
    log = str(Path(pg_data).parent / "log")
    subprocess.run(
        [*pg_ctl, "-D", pg_data, "-w", "-l", log, "start"], check=True, capture_output=True
    )


@pytest.mark.slow
def test_a_short_postgres_restart_mid_epoch_costs_no_trial(tmp_path: Path) -> None:
    """Reports and attributes ride out an outage shorter than the grace period."""
    url, pg_ctl, pg_data = postgres_server()
    name = f"blip{uuid.uuid4().hex[:8]}"
    path = study_file(tmp_path, epochs=15, name=name)
    proc = run_study_cli(path, 3, "--heartbeat", "1", "--grace-period", "20", storage=url)
    wait_for_running(url, name=name)
    restart_postgres(pg_ctl, pg_data, 1.0)
    out = finish(proc)
    assert proc.returncode == 0, out
    trials = trials_of(url, name)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3, out  # none failed, none redone


@pytest.mark.slow
def test_postgres_restart_mid_study(tmp_path: Path) -> None:
    """Down longer than the grace period: the trial fails, the run goes on and finishes."""
    url, pg_ctl, pg_data = postgres_server()
    name = f"restart{uuid.uuid4().hex[:8]}"
    path = study_file(tmp_path, epochs=15, name=name)
    beat = ("--heartbeat", "1", "--grace-period", "3")
    proc = run_study_cli(path, 5, *beat, storage=url)
    wait_for_running(url, name=name)
    restart_postgres(pg_ctl, pg_data, 6.0)
    out = finish(proc)
    failed = [t for t in trials_of(url, name) if t.state.name == "FAIL"]
    assert failed, out  # down longer than the grace period: the running trial was cut off
    for trial in failed:  # each cut-off trial's parameters were run again to completion
        retries = [
            t for t in trials_of(url, name) if t.system_attrs.get("failed_trial") == trial.number
        ]
        assert [t.state.name for t in retries] == ["COMPLETE"], out
    assert proc.returncode == 0, out
    assert "database unavailable" in out
    assert "Traceback" not in out, out  # no heartbeat thread dies loudly, no trial is refused
    trials = trials_of(url, name)
    assert sum(t.state.name == "COMPLETE" for t in trials) >= 5
    assert not [t for t in trials if t.state.name == "RUNNING"]
    password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert password not in out


def test_plan_workers_shares_cpus_and_pins_gpus() -> None:
    cpu = plan_workers(4, None, 1, cpus=8, device="cpu")
    assert [(p.device, p.threads, p.gpu) for p in cpu] == [("cpu", 2, None)] * 4
    gpu = plan_workers(None, [0, 1], 2, cpus=16)
    assert [(p.device, p.gpu) for p in gpu] == [("cuda", 0), ("cuda", 0), ("cuda", 1), ("cuda", 1)]
    with pytest.raises(UsageError, match="only 2 GPU slots"):
        plan_workers(3, [0, 1], 1, cpus=4)
    assert [p.threads for p in plan_workers(1, None, 1, cpus=8, threads=1)] == [1]
    assert [p.threads for p in plan_workers(None, [0], 2, cpus=8, threads=3)] == [3, 3]
    assert {p.device for p in plan_workers(2, None, 1, cpus=2)} == {"auto"}  # each resolves it
    with pytest.raises(UsageError, match="workers_per_gpu=2 needs gpus"):
        plan_workers(2, None, 2, cpus=2)
    with pytest.raises(UsageError, match="workers must be ≥ 1 but got 0"):
        plan_workers(0, None, 1, cpus=2)
    with pytest.raises(UsageError, match="device is cpu"):
        plan_workers(None, [0], 1, cpus=2, device="cpu")
    assert parse_gpus("0,2") == [0, 2]
    # --gpus counts the GPUs this process sees; a worker's CUDA_VISIBLE_DEVICES names them
    assert [visible_gpu(i, "2,3") for i in (0, 1)] == ["2", "3"]
    assert visible_gpu(0, "GPU-5f2a, GPU-77c1") == "GPU-5f2a"
    assert [visible_gpu(i, None) for i in (0, 1)] == ["0", "1"]
    with pytest.raises(UsageError, match="indices like 0,1"):
        parse_gpus("first")


def test_the_default_worker_count_is_gpus_on_gpus_else_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    from hpsearch.study._run import cores, default_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert cores() == 4
    assert default_workers("cpu", None) == (4, None)  # one single-thread worker per core
    assert default_workers("cpu", 2) == (2, None)  # --threads 2: cores / 2 workers
    assert default_workers("cpu", 8) == (1, None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # no GPU here to count
    assert default_workers("auto", None) == (4, None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert default_workers("auto", None) == (3, "all")  # one per GPU, as --gpus all
    assert default_workers("cuda", 1) == (3, "all")
    assert default_workers("cuda:1", None) == (1, None)  # the one GPU named
    assert default_workers("cpu", None) == (4, None)  # --device cpu on a GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert default_workers("auto", None) == (1, None)


def test_workers_starting_together_on_a_fresh_database_all_open_it(storage: str) -> None:
    from hpsearch.storages._rdb import open_storage

    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            open_storage(storage).get_all_studies()
        except BaseException as exc:  # collected: a thread's exception would not fail the test
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors  # was: "table studies already exists" for all but the first
