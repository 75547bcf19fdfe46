"""`hpsearch dashboard` end to end: a real server and study, pages rendered by headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from hpsearch.cli import main
from test_cli import assert_one_line_error

CHROMIUM = Path("/usr/bin/chromium")
STUDY = "dash-demo"
N_TRIALS = 5
START_TIMEOUT_S = 60.0  # the CPU may be busy; importing optuna + torch can be slow
# Virtual time lets the app's API calls finish; retried with more if the page is not there yet.
BUDGETS_MS = (15_000, 30_000, 60_000)
CHROMIUM_TIMEOUT_S = 120.0
HISTORY = [
    {"epoch": 1, "train_loss": 0.5, "valid_loss": 0.4, "valid_accuracy": 0.9, "seconds": 0.1}
]


@dataclass(frozen=True)
class Served:
    """A running dashboard and what the test stored behind it."""

    base: str
    study_id: int
    best_number: int
    profiles: Path


def require_chromium() -> Path:
    """Debian's headless Chromium: a failure when CI demands it, a skip elsewhere."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    message = f"{CHROMIUM} is missing; install it with .ci/install-chromium"
    if os.environ.get("HPSEARCH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"HPSEARCH_REQUIRE_BROWSER=1 but {message}")
    pytest.skip(message)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def build_study(url: str) -> optuna.Study:
    """Five cheap trials carrying the same user attributes (and weights) as the real objective."""
    from torch import nn

    from hpsearch.storages._artifacts import default_dir, open_store, upload_weights

    store = open_store(default_dir(url))  # where `hpsearch dashboard` looks by default

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-4, 0.1, log=True)
        value = 0.5 + lr
        upload_weights(store, trial, nn.Linear(2, 2))
        trial.set_user_attr("history", HISTORY)
        trial.set_user_attr("narrowing_round", 0)
        trial.set_user_attr("narrowing_ranges", {"lr": {"low": 0.0001, "high": 0.1}})
        trial.report(value, 1)
        return value

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            study_name=STUDY,
            storage=url,
            direction="maximize",
            sampler=optuna.samplers.RandomSampler(seed=0),
        )
        study.optimize(objective, n_trials=N_TRIALS)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


def wait_for_banner(proc: subprocess.Popen[bytes], stdout: Path, text: str, stderr: Path) -> None:
    """Return once the server has printed `text` (it binds first, so it listens by then)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if text in stdout.read_text():
            return
        if proc.poll() is not None:
            pytest.fail(f"dashboard exited with {proc.returncode}:\n{stderr.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"dashboard printed no {text!r} in {START_TIMEOUT_S}s:\n{stderr.read_text()}")


def visible_text(dom: str) -> str:
    """The rendered DOM's text, whitespace collapsed, scripts and styles dropped."""
    dom = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", dom, flags=re.S | re.I)
    text = html.unescape(re.sub(r"<[^>]+>", " ", dom))
    return re.sub(r"\s+", " ", text).strip()


def render(served: Served, path: str, ready: str) -> str:
    """Load a dashboard page in headless Chromium and return its text once `ready` shows."""
    text = ""
    for budget in BUDGETS_MS:
        profile = tempfile.mkdtemp(prefix="chromium-", dir=served.profiles)
        cmd = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget}",
            "--dump-dom",
            served.base + path,
        ]
        done = subprocess.run(cmd, capture_output=True, timeout=CHROMIUM_TIMEOUT_S, check=False)
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
        text = visible_text(done.stdout.decode(errors="replace"))
        if ready in text:
            return text
    pytest.fail(f"{path}: {ready!r} never rendered; last page text:\n{text[:3000]}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`hpsearch dashboard` as a subprocess on a fresh SQLite study, stopped afterwards."""
    require_chromium()
    tmp = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{tmp / 'trials.db'}"
    study = build_study(url)
    port = free_port()
    stdout, stderr = tmp / "server.out", tmp / "server.err"
    cmd = [sys.executable, "-m", "hpsearch", "dashboard", "--storage", url]
    cmd += ["--port", str(port)]  # no --host: the default must be loopback
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
    try:
        wait_for_banner(proc, stdout, f"http://127.0.0.1:{port}/dashboard/", stderr)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # listening by now
        profiles = tmp / "profiles"
        profiles.mkdir()
        yield Served(
            f"http://127.0.0.1:{port}",
            optuna.storages.RDBStorage(url).get_study_id_from_name(STUDY),
            study.best_trial.number,
            profiles,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_studies_page_lists_the_study(served: Served) -> None:
    text = render(served, "/dashboard", STUDY)
    assert f"1. {STUDY}" in text, text[:3000]
    assert "Direction: MAXIMIZE" in text, text[:3000]


@pytest.mark.slow
def test_study_pages_show_the_trial_count_and_best_trial(served: Served) -> None:
    sid = served.study_id
    trials = render(served, f"/dashboard/studies/{sid}/trials", "Trial 0 Complete")
    assert f"{STUDY} (id={sid})" in trials, trials[:3000]
    counts = [int(n) for n in re.findall(r"\b(\d+) Trials\b", trials)]
    assert counts == [N_TRIALS], trials[:3000]
    for number in range(N_TRIALS):
        assert f"Trial {number} Complete" in trials, trials[:3000]
    assert f"Trial {N_TRIALS} " not in trials

    history = render(served, f"/dashboard/studies/{sid}", "Best Trial")
    assert f"{STUDY} (id={sid})" in history, history[:3000]
    assert f"Best Trial (number={served.best_number})" in history, history[:3000]


@pytest.mark.slow
def test_trial_page_shows_the_user_attributes(served: Served) -> None:
    path = f"/dashboard/studies/{served.study_id}/trials?numbers=0"
    text = render(served, path, "User Attributes")
    attrs = text[text.index("User Attributes") :]
    for name in ("history", "narrowing_ranges", "narrowing_round"):
        assert name in attrs, attrs[:3000]
    assert '"valid_accuracy": 0.9' in attrs, attrs[:3000]
    assert '"lr": {"low": 0.0001, "high": 0.1}' in attrs, attrs[:3000]
    assert "trial-0-weights.pt" in text, text[:3000]  # the stored weights, as an artifact


def test_dashboard_for_an_unknown_study_is_one_error_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    result = CliRunner().invoke(main, ["dashboard", "--study", "no-such-study", "--storage", url])
    assert_one_line_error(result, "unknown study 'no-such-study'")


@pytest.mark.slow
def test_dashboard_on_a_mistyped_sqlite_path_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "trails.db"
    cmd = [sys.executable, "-m", "hpsearch", "dashboard", "--storage", f"sqlite:///{typo}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)  # must not serve
    assert_one_line_error(done, f"no SQLite file {typo}", "check the --storage path")
    assert not typo.exists()


@pytest.mark.slow
def test_dashboard_listens_on_loopback_by_default(served: Served) -> None:
    port = int(served.base.rsplit(":", 1)[1])
    listening = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
            listening.append(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    assert listening == ["127.0.0.1"]
    help_text = CliRunner().invoke(main, ["dashboard", "--help"]).output
    assert re.search(r"--host TEXT.*\[default: 127\.0\.0\.1\]", help_text, re.S), help_text


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        (["--host", "999.1.1.1"], "cannot use --host 999.1.1.1"),
        (["--port", "TAKEN"], "Address already in use; pick another --port"),
        (["--host", "::1", "--port", "TAKEN6"], "Address already in use; pick another --port"),
    ],
)
@pytest.mark.slow
def test_a_bad_address_is_one_line_before_any_banner(
    tmp_path: Path, where: list[str], fragment: str
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    optuna.create_study(study_name="x", storage=url)
    six = "TAKEN6" in where  # an IPv6 address is served too (and its taken port named)
    with socket.socket(socket.AF_INET6 if six else socket.AF_INET) as taken:
        taken.bind(("::1" if six else "127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        where = [port if arg.startswith("TAKEN") else arg for arg in where]
        cmd = [sys.executable, "-m", "hpsearch", "dashboard", "--storage", url, *where]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert_one_line_error(done, fragment)


# ------------------------------------------------------------ `hpsearch run --dashboard`


def port_is_free(port: int) -> bool:
    """Nobody listens on the loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.slow
def test_run_with_a_dashboard_serves_the_study_and_stops_with_the_run(tmp_path: Path) -> None:
    from processes import hpsearch, sleepy_study

    require_chromium()
    study = sleepy_study(tmp_path, epoch=1.0)  # 100 trials x 2 s: the run outlasts the test
    url, port = f"sqlite:///{tmp_path / 'trials.db'}", free_port()
    args = ["run", "--study", str(study), "--trials", "100", "--device", "cpu"]
    proc = hpsearch(*args, "--dashboard", "--port", str(port), url=url, separate_stderr=True)
    try:
        assert proc.stderr is not None
        banner = proc.stderr.readline()  # printed when serving, before the first trial's line
        assert f"optuna-dashboard on http://127.0.0.1:{port}/dashboard/" in banner, banner
        profiles = tmp_path / "profiles"
        profiles.mkdir()
        sid = optuna.storages.RDBStorage(url).get_study_id_from_name("sleepy")
        served = Served(f"http://127.0.0.1:{port}", sid, 0, profiles)
        assert "1. sleepy" in render(served, "/dashboard", "sleepy")
        assert proc.poll() is None, "the run ended before the page was checked"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert port_is_free(port)
    assert "interrupted" in err


@pytest.mark.slow
def test_the_python_api_serves_the_dashboard_during_the_run_only(tmp_path: Path) -> None:
    import hpsearch
    from processes import sleepy_study

    port, seen = free_port(), []

    def objective(params: dict[str, float], ctx: hpsearch.TrialContext) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as page:
            seen.append([s["study_name"] for s in json.load(page)["study_summaries"]])
        return params["x"]

    spec = hpsearch.load_spec(str(sleepy_study(tmp_path, epoch=0.0)))
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    summary = hpsearch.run(
        spec, 2, storage=url, objective=objective, dashboard_port=port, progress=False
    )
    assert summary.finished == 2
    assert seen == [["sleepy"], ["sleepy"]]
    assert port_is_free(port)


def test_run_dashboard_on_a_taken_port_is_one_line_and_creates_nothing(
    tmp_path: Path, make_study: Callable[..., Path]
) -> None:
    db = tmp_path / "trials.db"
    args = ["run", "--study", str(make_study()), "--trials", "1", "--storage", f"sqlite:///{db}"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = CliRunner().invoke(main, [*args, "--dashboard", "--port", port])
    assert_one_line_error(
        result, f"cannot serve the dashboard on 127.0.0.1:{port}", "pick another --port"
    )
    assert not db.exists()
    assert not (tmp_path / "trials.db-artifacts").exists()


def test_run_port_without_dashboard_is_one_line(
    tmp_path: Path, make_study: Callable[..., Path]
) -> None:
    db = tmp_path / "trials.db"
    args = ["run", "--study", str(make_study()), "--trials", "1", "--storage", f"sqlite:///{db}"]
    result = CliRunner().invoke(main, [*args, "--port", "8999"])
    assert_one_line_error(result, "--port sets the dashboard's port; add --dashboard")
    assert not db.exists()
