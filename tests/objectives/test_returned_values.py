"""What a user's code hands back is checked where it enters, and every hint it prints works (#28).

The toy objective's `test` returns what users naturally write (per_class as a dict, a tensor
confusion matrix, a bare float, mismatched lengths); a bad record left by an older hpsearch is
shown as such and `report --retest` replaces it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import Result
from toy_study import stored

from hpsearch import _keys

pytestmark = pytest.mark.slow  # every test runs a study
Cli = Callable[..., Result]


def study_with(toy: Callable[..., Path], test_mode: str = "ok", mode: str = "ok") -> Path:
    """The toy study whose `test` answers in `test_mode`."""
    path = toy(mode=mode)
    path.write_text(path.read_text().replace("n = 512", f'n = 512\ntest_mode = "{test_mode}"'))
    return path


def run(cli: Cli, study: Path, url: str, trials: int = 2) -> Result:
    """`hpsearch run` of the study, which must succeed."""
    done = cli("run", "--study", str(study), "--trials", str(trials), "--storage", url)
    assert done.exit_code == 0, done.output
    return done


def report(cli: Cli, study: Path, url: str, out: Path, *extra: str) -> Result:
    """`hpsearch report` into out."""
    return cli("report", "--study", str(study), "--storage", url, "-o", str(out), *extra)


def records(url: str) -> dict[str, object]:
    """The study's recorded test results, by key."""
    attrs = optuna.load_study(study_name="toy-study", storage=url).user_attrs
    return {k: v for k, v in attrs.items() if k.startswith(_keys.TEST_RESULTS)}


def test_per_class_as_a_dict_keyed_by_class_is_accepted(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """{"neg": .., "pos": ..} becomes classes and per_class in that order; the page shows it."""
    study = study_with(toy, "per-class-dict")
    run(cli, study, storage_url)
    done = report(cli, study, storage_url, tmp_path / "r")
    assert done.exit_code == 0, done.output
    (record,) = records(storage_url).values()
    assert record["classes"] == ["neg", "pos"]  # type: ignore[index]
    assert all(isinstance(v, float) for v in record["per_class"])  # type: ignore[index]
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Per-class test accuracy" in page and "<td>pos</td>" in page


def test_a_tensor_confusion_matrix_draws_the_figure(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """A torch tensor for `confusion` is stored as counts and drawn."""
    study = study_with(toy, "matrix")
    run(cli, study, storage_url)
    done = report(cli, study, storage_url, tmp_path / "r")
    assert done.exit_code == 0, done.output
    (record,) = records(storage_url).values()
    assert sum(map(sum, record["confusion"])) == 512  # type: ignore[index,arg-type]
    assert (tmp_path / "r" / "confusion_matrix.png").exists()


@pytest.mark.parametrize(
    ("test_mode", "message"),
    [
        ("float", r"objective\.test returned 0\.\d+ \(float\); it must return a dict of numbers"),
        ("ragged", "objective.test returned per_class for 3 classes but classes names 2"),
    ],
)
def test_a_result_that_cannot_be_recorded_is_one_line_and_never_stored(
    cli: Cli,
    toy: Callable[..., Path],
    storage_url: str,
    tmp_path: Path,
    test_mode: str,
    message: str,
) -> None:
    """One line naming objective.test; nothing recorded, no page; after the fix, it reports."""
    study = study_with(toy, test_mode)
    run(cli, study, storage_url)
    done = report(cli, study, storage_url, tmp_path / "r")
    assert done.exit_code == 1 and "Traceback" not in done.output, done.output
    assert re.search(message, done.output), done.output
    assert len(done.output.strip().splitlines()) == 1, done.output
    assert not records(storage_url) and not (tmp_path / "r" / "index.html").exists()
    toy_py = study.parent / "toy.py"  # the user fixes `test`, then reports again (a new process)
    text = toy_py.read_text()
    toy_py.write_text(text.replace('ctx.config.get("test_mode", "ok")', '"ok"'))
    assert toy_py.read_text() != text
    args = ["report", "--study", str(study), "--storage", storage_url, "-o", str(tmp_path / "r")]
    fixed = subprocess.run(
        [sys.executable, "-m", "hpsearch", *args], capture_output=True, text=True
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "(evaluated now and recorded)" in fixed.stdout


def test_a_bad_record_from_an_older_version_is_shown_and_retest_replaces_it(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """per_class as strings was stored once; the report still writes, and --retest fixes it."""
    study = study_with(toy)
    run(cli, study, storage_url)
    loaded = optuna.load_study(study_name="toy-study", storage=storage_url)
    key = f"{_keys.TEST_RESULTS}:{loaded.best_trial.number}"
    bad = {"trial": loaded.best_trial.number, "metrics": {"accuracy": 0.9}, "per_class": ["x"]}
    loaded.set_user_attr(key, bad)
    done = report(cli, study, storage_url, tmp_path / "r")
    assert done.exit_code == 0 and "Traceback" not in done.output, done.output
    hint = next(line for line in done.output.splitlines() if "recorded test result" in line)
    assert "per_class[0]" in hint and "evaluate it again with --retest" in hint, hint
    assert (tmp_path / "r" / "index.html").exists()
    again = report(cli, study, storage_url, tmp_path / "r", "--retest")  # as the hint says
    assert again.exit_code == 0, again.output
    assert "(evaluated now and recorded, replacing the earlier record)" in again.output
    record = records(storage_url)[key]
    assert record["metrics"]["accuracy"] > 0.8 and record["per_class"] == []  # type: ignore[index]
    assert "(as recorded)" in report(cli, study, storage_url, tmp_path / "r").output


def test_a_completed_trial_without_saved_weights_says_why(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """Not "it did not complete": the objective never called ctx.save_weights. The rest of the
    report is written; once the objective saves its weights, the trials run after can be tested.
    """
    study = study_with(toy, mode="no-save")
    run(cli, study, storage_url)
    done = report(cli, study, storage_url, tmp_path / "r")
    assert done.exit_code == 0, done.output
    assert "did not call ctx.save_weights(model)" in done.output
    assert "did not complete" not in done.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert "did not call ctx.save_weights(model)" in page
    assert not records(storage_url)  # nothing was evaluated, nothing recorded
    study.write_text(study.read_text().replace('mode = "no-save"', 'mode = "ok"'))
    best = max(stored(storage_url), key=lambda t: t.value or 0.0)
    again = cli(
        "run", "--study", str(study), "--trials", "12", "--storage", storage_url,
        "--allow-changed-spec",
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    saved = [t for t in stored(storage_url) if _keys.WEIGHTS_ARTIFACT in t.user_attrs]
    assert saved and all(t.number > best.number for t in saved)
    done = report(cli, study, storage_url, tmp_path / "r")
    assert done.exit_code == 0, done.output
    newest_best = max(stored(storage_url), key=lambda t: t.value or 0.0)
    assert newest_best.number in {t.number for t in saved}  # seeded: one of the 10 new is best
    assert "test accuracy" in done.output and "save_weights" not in done.output, done.output


def test_an_error_of_hpsearch_in_a_trial_prints_one_line_not_a_traceback(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """A ctx.report without the metric: one line per failed trial, the stop line, no trace."""
    study = toy(mode="no-metric", max_failures=2)
    done = cli("run", "--study", str(study), "--trials", "3", "--storage", storage_url)
    assert done.exit_code == 1
    assert "Traceback" not in done.output, done.output
    failed = [line for line in done.output.splitlines() if "failed: ReportError" in line]
    assert len(failed) == 2, done.output


def test_a_lower_total_than_the_study_holds_is_refused_with_a_command_that_works(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """--trials is the study's total: 2 on a study of 3 is refused, and the hint's total runs."""
    study = toy()
    run(cli, study, storage_url, trials=3)
    done = cli("run", "--study", str(study), "--trials", "2", "--storage", storage_url)
    assert done.exit_code == 1, done.output
    total = optuna.load_study(study_name="toy-study", storage=storage_url).user_attrs
    assert total[_keys.TARGET_TRIALS] == 3  # unchanged
    found = re.search(r"pass --trials (\d+) to run 2 more", done.output)
    assert found and found.group(1) == "5", done.output
    run(cli, study, storage_url, trials=5)
    assert len(stored(storage_url)) == 5
    lowered = cli("run", "--study", str(study), "--trials", "5", "--storage", storage_url)
    assert lowered.exit_code == 0, lowered.output


def test_export_has_the_best_epoch_of_a_users_objective(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """The first epoch with the best reported metric, as hpsearch.fit records its own."""
    study = toy()
    run(cli, study, storage_url)
    done = cli("export", "--study", str(study), "--storage", storage_url, "--format", "json")
    assert done.exit_code == 0, done.output
    for trial in json.loads(done.output)["trials"]:
        history = trial[_keys.HISTORY]
        best = max(row["valid_accuracy"] for row in history)
        first = next(row["epoch"] for row in history if row["valid_accuracy"] == best)
        assert trial[_keys.BEST_EPOCH] == first


def test_rerun_uses_the_trials_own_thread_count(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """A trial run with 1 thread retrains with 1 unless --threads says otherwise."""
    study = toy()
    done = cli(
        "run", "--study", str(study), "--trials", "1", "--storage", storage_url, "--threads", "1"
    )
    assert done.exit_code == 0, done.output
    again = cli("rerun", "--study", str(study), "--storage", storage_url, "--trial", "0")
    assert again.exit_code == 0, again.output
    assert "with 1 threads" in again.output and "identical" in again.output


def test_the_thread_hint_of_rerun_works_as_printed(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """A rerun with other threads that differs says to leave --threads out; doing so matches."""
    study = toy(mode="by-threads")
    done = cli(
        "run", "--study", str(study), "--trials", "1", "--storage", storage_url, "--threads", "1"
    )
    assert done.exit_code == 0, done.output
    rerun = ("rerun", "--study", str(study), "--storage", storage_url, "--trial", "0")
    other = cli(*rerun, "--threads", "2")
    assert other.exit_code == 0, other.output
    assert other.output.rstrip().endswith("; the trial ran with 1 threads: leave --threads out")
    again = cli(*rerun)
    assert again.exit_code == 0, again.output
    assert "identical: the trial reproduces exactly" in again.output


def test_an_integer_range_with_a_float_end_is_refused_and_the_fix_runs(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """`high = 32.0` next to `low = 4` is ambiguous; the line says what to write, and it works."""
    study = toy()
    study.write_text(study.read_text().replace("high = 32 }", "high = 32.0 }"))
    done = cli("run", "--study", str(study), "--trials", "1", "--storage", storage_url)
    assert done.exit_code == 1 and len(done.output.strip().splitlines()) == 1, done.output
    assert "search.width: low = 4 is an integer but high = 32.0 is not" in done.output
    assert not (tmp_path / "trials.db").exists()
    study.write_text(study.read_text().replace("high = 32.0 }", "high = 32 }"))  # as it says
    run(cli, study, storage_url)
    assert all(isinstance(t.params["width"], int) for t in stored(storage_url))


def test_the_regularizer_table_has_no_row_per_integer(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """width = 4..32 is not a handful of settings; act and dropout are."""
    study = toy()
    run(cli, study, storage_url, trials=3)
    done = report(cli, study, storage_url, tmp_path / "r")
    assert done.exit_code == 0, done.output
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<td>act = relu</td>" in page or "<td>act = tanh</td>" in page
    assert "<td>width = " not in page


def test_a_narrowing_note_is_printed_once_per_process(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """ "lr: best values ... lie outside round 2's range" again in round 4 is not news."""
    keys = "trials_per_round = 6\nmin_keep = 2\nmin_complete = 2"
    study = toy(sampler="narrowing", sampler_keys=keys)
    narrow = "lr = { low = 0.001, high = 0.003, log = true }"
    study.write_text(
        study.read_text().replace("lr = { low = 0.01, high = 1.0, log = true }", narrow)
    )
    done = run(cli, study, storage_url, trials=30)
    outside = [line for line in done.output.splitlines() if "lie outside round" in line]
    assert len(outside) == 1, done.output
    recorded = [
        note
        for trial in stored(storage_url)
        for note in trial.user_attrs.get(_keys.NARROWING_NOTES, [])
        if "lie outside round" in note
    ]
    assert len({note.split(":")[0] for note in recorded}) >= 2  # every round still records it


def test_weights_moved_elsewhere_are_found_with_the_printed_option(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """A moved artifact folder: report names --artifacts DIR, and passing it as printed works."""
    study = study_with(toy)
    run(cli, study, storage_url)
    default = Path(storage_url.removeprefix("sqlite:///")).with_name("trials-artifacts")
    assert default.is_dir(), sorted(p.name for p in default.parent.iterdir())
    moved = default.rename(tmp_path / "kept-weights")
    lost = report(cli, study, storage_url, tmp_path / "r")
    assert lost.exit_code == 1 and "pass --artifacts DIR" in lost.output, lost.output
    assert len(lost.output.strip().splitlines()) == 1 and not records(storage_url)
    found = report(cli, study, storage_url, tmp_path / "r", "--artifacts", str(moved))
    assert found.exit_code == 0, found.output
    assert "test accuracy" in found.output and len(records(storage_url)) >= 1
