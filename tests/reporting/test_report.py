"""`hpsearch report`: files, figures, the test accuracy recorded once, and the page in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from hpsearch import _keys
from hpsearch.cli import main
from hpsearch.reporting._summaries import format_duration

Cli = Callable[..., Result]
FIGURES = {
    "loss_curves.png",
    "confusion_matrix.png",
    "best_so_far.png",
    "best_over_time.png",
    "metric_vs_params.png",
    "importances.png",
    "narrowing_ranges.png",
}
STUDY = (
    "seed = 3\n[data]\ntrain_size = 2400\nvalid_size = 600\n[model]\nhidden = [64]\n"
    "[training]\nmax_epochs = 2\n[search]\nlr = { low = 3e-4, high = 3e-3, log = true }\n"
    "batch_norm = { choices = [true, false] }\n"
    "dropout = { low = 0.1, high = 0.5, step = 0.1, when = { batch_norm = false } }\n"
    "[sampler]\nkind = 'narrowing'\ntrials_per_round = 3\nmin_keep = 1\nmin_complete = 1\n"
    "[pruner]\nkind = 'none'\n"
)


def report(*args: str, data: Path) -> Result:
    """The real report command."""
    return CliRunner().invoke(main, ["report", *args, "--data-dir", str(data)])


@pytest.fixture
def ran(cli: Cli, make_study: Callable[..., Path], tmp_path: Path) -> tuple[Path, str]:
    """A finished 6-trial narrowing study."""
    path = make_study(name="rep", text=STUDY)
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(path), "--trials", "6", "--storage", url)
    assert result.exit_code == 0, result.output
    return path, url


@pytest.mark.slow
def test_report_writes_every_figure_and_the_recorded_test_accuracy(
    ran: tuple[Path, str], tmp_path: Path, mnist_dir: Path
) -> None:
    path, url = ran
    out = tmp_path / "report"
    result = report("--study", str(path), "--storage", url, "-o", str(out), data=mnist_dir)
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == FIGURES | {"index.html"}
    for name in FIGURES:
        with Image.open(out / name) as image:
            image.verify()
            assert image.format == "PNG"
    study = optuna.load_study(study_name="rep", storage=url)
    best = study.best_trial
    recorded = study.user_attrs[f"test_results:{best.number}"]
    page = (out / "index.html").read_text()
    shown = re.search(r'id="test-accuracy">([0-9.]+)<', page)
    assert shown and float(shown.group(1)) == round(recorded["metrics"]["accuracy"], 4)
    assert sum(map(sum, recorded["confusion"])) == 1000  # the committed MNIST test subset
    assert recorded["classes"] == [str(d) for d in range(10)]
    assert "evaluated now and recorded" in result.output and "git_commit" in result.output
    assert "batch_norm = True" in page and "epochs saved by pruning" in page
    assert_economy(page, result.output, study)
    again = report("--study", str(path), "--storage", url, "-o", str(out), data=mnist_dir)
    assert "test accuracy" in again.output and "(as recorded)" in again.output
    assert optuna.load_study(study_name="rep", storage=url).user_attrs == study.user_attrs
    older = {**recorded, "accuracy": recorded["metrics"]["accuracy"]}  # as hpsearch wrote it
    del older["metrics"]  # before test functions returned several numbers, in one dict
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("DELETE FROM study_user_attributes WHERE key LIKE 'test_results:%'")
    study.set_user_attr("test_results", {str(best.number): older})
    old = report("--study", str(path), "--storage", url, "-o", str(out), data=mnist_dir)
    assert f"test accuracy {recorded['metrics']['accuracy']:.4f} (as recorded)" in old.output


def assert_economy(page: str, output: str, study: optuna.Study) -> None:
    """Epochs run against 6 full trials of 2 epochs, and when the best (first reached) came."""
    trials = study.get_trials()
    epochs = sum(len(t.user_attrs[_keys.HISTORY]) for t in trials)
    line = (
        f"epochs: {epochs} run of the 12 that 6 full trials would cost ({100 * epochs / 12:.0f} %)"
    )
    assert f'<p id="economy-epochs">{line}</p>' in page and line in output
    start = min(t.datetime_start for t in trials if t.datetime_start)
    done = sorted(study.get_trials(states=[optuna.trial.TrialState.COMPLETE]), key=finished_at)
    first_best = next(t for t in done if t.value == study.best_value)
    found = format_duration((finished_at(first_best) - start).total_seconds())
    best = re.search(r'<p id="economy-best">(.*?)</p>', page)
    assert best, page
    assert best.group(1).startswith(
        f"best {study.best_value:.4f} found at {found} of study time (trial #{first_best.number})"
    )
    assert best.group(1) in output


def finished_at(trial: optuna.trial.FrozenTrial) -> datetime:
    """When a finished trial ended."""
    assert trial.datetime_complete is not None
    return trial.datetime_complete


@pytest.mark.slow
def test_report_page_loads_in_headless_chromium(
    ran: tuple[Path, str], tmp_path: Path, mnist_dir: Path
) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        if os.environ.get("HPSEARCH_REQUIRE_BROWSER") == "1":
            pytest.fail("HPSEARCH_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
        pytest.skip("Debian's chromium is not installed")
    path, url = ran
    out = tmp_path / "report"
    assert (
        report("--study", str(path), "--storage", url, "-o", str(out), data=mnist_dir).exit_code
        == 0
    )
    profile = tmp_path / "profile"
    cmd = [
        str(chromium),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        (out / "index.html").as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    assert loaded and total, dom[:500]
    assert int(loaded.group(1)) == int(total.group(1)) == len(FIGURES)
    best = optuna.load_study(study_name="rep", storage=url).best_trial.number
    accuracy = optuna.load_study(study_name="rep", storage=url).user_attrs[f"test_results:{best}"]
    assert f'id="test-accuracy">{accuracy["metrics"]["accuracy"]:.4f}<' in dom


@pytest.mark.slow
def test_report_of_an_unfinished_study_says_so(
    ran: tuple[Path, str], tmp_path: Path, mnist_dir: Path
) -> None:
    path, url = ran
    assert (
        CliRunner()
        .invoke(main, ["create", "--study", str(path), "--trials", "20", "--storage", url])
        .exit_code
        == 0
    )
    out = tmp_path / "report"
    result = report("--study", str(path), "--storage", url, "-o", str(out), data=mnist_dir)
    assert result.exit_code == 0, result.output
    assert "not finished: 6 of 20 trials, none running now" in result.output
    assert "not finished: 6 of 20 trials, none running now" in (out / "index.html").read_text()
    below = ["create", "--study", str(path), "--trials", "4", "--storage", url]
    refused = CliRunner().invoke(main, below)  # below what it holds: a slip, refused
    assert refused.exit_code == 1 and "pass --trials 10 to run 4 more" in refused.output
    lowered = ["create", "--study", str(path), "--trials", "6", "--storage", url]
    assert CliRunner().invoke(main, lowered).exit_code == 0  # down to what it holds: stopped
    result = report("--study", str(path), "--storage", url, "-o", str(out), data=mnist_dir)
    assert "Finished: 6 of 6 trials." in (out / "index.html").read_text()


@pytest.mark.slow
def test_report_bad_inputs(
    ran: tuple[Path, str], make_study: Callable[..., Path], tmp_path: Path, mnist_dir: Path
) -> None:
    path, url = ran
    absent = report("--study", str(make_study()), "--storage", url, data=mnist_dir)
    assert absent.exit_code == 1 and "no study 'tiny'" in absent.output
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("x")
    unwritable = report(
        "--study", str(path), "--storage", url, "-o", str(blocked / "r"), data=mnist_dir
    )
    assert unwritable.exit_code == 1 and "cannot write the report" in unwritable.output
    other = tmp_path / "other"
    shutil.copytree(mnist_dir, other)
    images = other / "MNIST" / "raw" / "train-images-idx3-ubyte"
    pixels = bytearray(images.read_bytes())
    pixels[1000] ^= 0xFF  # one pixel: other training data, though the test split is the same
    images.write_bytes(bytes(pixels))
    elsewhere = report(
        "--study", str(path), "--storage", url, "-o", str(tmp_path / "r0" / "r"), data=other
    )
    assert elsewhere.exit_code == 1, elsewhere.output
    assert f"the data in {other} is not what study 'rep' was trained on" in elsewhere.output
    assert not (tmp_path / "r0").exists()  # a failed report leaves no folder behind
    best = optuna.load_study(study_name="rep", storage=url).best_trial
    (tmp_path / "trials-artifacts" / best.user_attrs[_keys.WEIGHTS_ARTIFACT]).unlink()
    missing = report(
        "--study", str(path), "--storage", url, "-o", str(tmp_path / "r"), data=mnist_dir
    )
    assert missing.exit_code == 1 and f"weights of trial #{best.number}" in missing.output
    assert "pass --artifacts DIR" in missing.output
    assert "test_results" not in optuna.load_study(study_name="rep", storage=url).user_attrs
    for result in (absent, unwritable, elsewhere, missing):
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_report_without_completed_trials(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path, mnist_dir: Path
) -> None:
    path = make_study(pruner='kind = "threshold"\nlower = 0.999\nn_warmup_steps = 0')
    url = f"sqlite:///{tmp_path / 'p.db'}"
    assert cli("run", "--study", str(path), "--trials", "1", "--storage", url).exit_code == 0
    result = report(
        "--study", str(path), "--storage", url, "-o", str(tmp_path / "r"), data=mnist_dir
    )
    assert result.exit_code == 1 and "no completed trial" in result.output


@pytest.mark.slow
def test_flowers_report_names_the_classes(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path, mnist_dir: Path
) -> None:
    text = (
        "seed = 1\n[data]\ndataset = 'flowers'\nimage_size = 32\n[training]\nmax_epochs = 1\n"
        "[search]\nlr = { low = 1e-3, high = 1e-2, log = true }\n"
        "augment = { choices = [true, false] }\n[sampler]\nkind = 'random'\n"
        "[pruner]\nkind = 'none'\n"
    )
    path = make_study(name="fl", text=text)
    url = f"sqlite:///{tmp_path / 'f.db'}"
    assert cli("run", "--study", str(path), "--trials", "2", "--storage", url).exit_code == 0
    out = tmp_path / "r"
    result = report("--study", str(path), "--storage", url, "-o", str(out), data=mnist_dir)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="fl", storage=url)
    record = study.user_attrs[f"test_results:{study.best_trial.number}"]
    assert record["classes"] == ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    assert sum(map(sum, record["confusion"])) == 30  # 15% of 40 images per class


def test_ranges_table_says_how_many_completed_behind_each_best() -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import FrozenTrial, TrialState, create_trial

    from hpsearch.reporting._summaries import ranges_table

    def made(state: TrialState, value: float | None, step_value: float, rnd: int) -> FrozenTrial:
        return create_trial(
            state=state,
            value=value,
            params={"lr": 0.01},
            distributions={"lr": FloatDistribution(1e-3, 0.1, log=True)},
            intermediate_values={1: step_value},
            user_attrs={
                "narrowing_round": rnd,
                "narrowing_ranges": {"lr": {"low": 1e-3, "high": 0.1}},
            },
        )

    trials = [
        made(TrialState.COMPLETE, 0.7, 0.7, 0),
        made(TrialState.COMPLETE, 0.6, 0.6, 0),
        made(TrialState.COMPLETE, 0.18, 0.18, 1),  # diverged; the others were pruned
        made(TrialState.PRUNED, None, 0.65, 1),
        made(TrialState.PRUNED, None, 0.64, 1),
        made(TrialState.PRUNED, None, 0.5, 2),
    ]
    rows = [line.split() for line in ranges_table(trials, maximize=True)]
    assert rows[0][:4] == ["round", "trials", "completed", "best"]
    assert [row[:4] for row in rows[1:]] == [
        ["0", "2", "2", "0.7000"],
        ["1", "3", "1", "0.1800"],
        ["2", "1", "0", "-"],
    ]


def synthetic(
    number: int, state: str, epochs: int, start_s: float, end_s: float
) -> optuna.trial.FrozenTrial:
    """A stored trial with `epochs` one-second epochs that ran from start_s to end_s."""
    from datetime import datetime, timedelta

    zero = datetime(2026, 1, 1)
    history = [{"epoch": i + 1, "seconds": 1.0} for i in range(epochs)]
    return optuna.trial.FrozenTrial(
        number=number,
        state=optuna.trial.TrialState[state],
        value=0.5 if state == "COMPLETE" else None,
        datetime_start=zero + timedelta(seconds=start_s),
        datetime_complete=zero + timedelta(seconds=end_s),
        params={},
        distributions={},
        user_attrs={"history": history},
        system_attrs={},
        intermediate_values={},
        trial_id=number,
    )


def test_cost_counts_what_ran_and_what_pruning_saved(make_study: Callable[..., Path]) -> None:
    from hpsearch.reporting._html import cost
    from hpsearch.spec import load_spec

    spec = load_spec(str(make_study(max_epochs=20)))
    trials = [
        synthetic(0, "COMPLETE", 5, 0, 10),  # early stopping: completed trials ran 5 and 7 epochs
        synthetic(1, "COMPLETE", 7, 5, 20),  # overlaps #0: a second worker
        synthetic(2, "PRUNED", 2, 100, 104),  # after a 80 s gap (the study was resumed)
        synthetic(3, "PRUNED", 3, 104, 110),
        synthetic(4, "FAIL", 1, 110, 112),  # cut off by Ctrl-C after one epoch
    ]
    rows = dict(cost(trials, spec))
    assert rows["epochs run (failed trials included)"] == "18"
    saved = rows["epochs saved by pruning (estimate)"]
    assert saved.startswith("7 (about 7.0s; as if each pruned trial ran 6.0 epochs"), saved
    # 4 finished trials in 32 s of running time (0-20 and 100-112), not in the 112 s span
    assert rows["finished trials per hour of running time"] == f"{4 / (32 / 3600):.1f}"
    assert rows["time per epoch"] == "1.00 s"
