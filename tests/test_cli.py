"""The real CLI: tiny studies on SQLite, resume, pruning, and every bad input as one clean line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import Result

Cli = Callable[..., Result]


def snapshot(url: str, name: str) -> list[tuple[int, str, float | None, dict[str, object]]]:
    """Everything stored about a study's trials, to prove a failed command changed nothing."""
    study = optuna.load_study(study_name=name, storage=url)
    return [(t.number, t.state.name, t.value, t.params) for t in study.trials]


def assert_one_line_error(
    result: Result | subprocess.CompletedProcess[str], *fragments: str
) -> None:
    """Non-zero exit, a single 'Error: ...' line, no traceback (CliRunner or a subprocess)."""
    if isinstance(result, Result):
        code, output = result.exit_code, result.output
    else:
        code, output = result.returncode, result.stdout + result.stderr
    assert code != 0, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), output
    assert "Traceback" not in output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def stored(cli: Cli, make_study: Callable[..., Path], storage_url: str) -> tuple[Path, str]:
    """A tiny study with two finished trials already in storage."""
    study = make_study()
    result = cli("run", "--study", str(study), "--trials", "2", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    return study, storage_url


@pytest.mark.slow
def test_run_persists_trials_with_history_to_sqlite(stored: tuple[Path, str]) -> None:
    _, url = stored
    study = optuna.load_study(study_name="tiny", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:
        history = trial.user_attrs["history"]
        assert [h["epoch"] for h in history] == [1, 2]
        assert set(history[0]) == {"epoch", "train_loss", "valid_loss", "valid_accuracy", "seconds"}
        assert trial.intermediate_values == {h["epoch"]: h["valid_accuracy"] for h in history}
        assert trial.user_attrs["epochs"] == 2
        assert 0.2 < trial.value <= 1.0  # well above chance (0.1) after two short epochs
        assert trial.value == history[trial.user_attrs["best_epoch"] - 1]["valid_accuracy"]
    assert study.user_attrs["study_file_hash"]


@pytest.mark.slow
def test_resume_reaches_the_total_exactly(cli: Cli, stored: tuple[Path, str]) -> None:
    path, url = stored
    before = snapshot(url, "tiny")
    result = cli("run", "--study", str(path), "--trials", "5", "--storage", url)
    assert result.exit_code == 0, result.output
    assert "5/5 trials finished" in result.output
    after = snapshot(url, "tiny")
    assert len(after) == 5 and after[:2] == before
    assert len({tuple(sorted(t[3].items())) for t in after}) == 5, "resume replayed old draws"
    again = cli("run", "--study", str(path), "--trials", "5", "--storage", url)
    assert again.exit_code == 0 and snapshot(url, "tiny") == after


@pytest.mark.slow
def test_forced_pruner_prunes(cli: Cli, make_study: Callable[..., Path], storage_url: str) -> None:
    study = make_study(max_epochs=3, pruner='kind = "threshold"\nlower = 0.999\nn_warmup_steps = 0')
    result = cli("run", "--study", str(study), "--trials", "3", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="tiny", storage=storage_url).trials
    assert [t.state.name for t in trials] == ["PRUNED"] * 3
    assert all(t.user_attrs["pruned_at_epoch"] == 1 for t in trials)
    assert all(len(t.user_attrs["history"]) == 1 for t in trials)
    assert "3 pruned" in result.output


@pytest.mark.slow
def test_median_pruner_prunes_a_bad_trial(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    text = (
        "seed = 4\n[data]\ntrain_size = 2400\nvalid_size = 600\n[training]\nmax_epochs = 3\n"
        "[search]\nlr = { choices = [0.001, 0.001, 0.001, 1e-9] }\n[sampler]\nkind = 'random'\n"
        "[pruner]\nkind = 'median'\nn_startup_trials = 2\nn_warmup_steps = 0\n"
    )
    study = make_study(text=text)
    result = cli("run", "--study", str(study), "--trials", "8", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="tiny", storage=storage_url).trials
    hopeless = [t for t in trials[2:] if t.params["lr"] == 1e-9]
    assert hopeless, "the seeded draw should include the hopeless lr after the startup trials"
    assert all(t.state.name == "PRUNED" and t.user_attrs["pruned_at_epoch"] == 1 for t in hopeless)


@pytest.mark.slow
def test_best_prints_value_params_epochs_and_time(cli: Cli, stored: tuple[Path, str]) -> None:
    path, url = stored
    result = cli("best", "--study", str(path), "--storage", url)
    assert result.exit_code == 0, result.output
    best = optuna.load_study(study_name="tiny", storage=url).best_trial
    assert f"best trial #{best.number}: valid_accuracy = {best.value:.4f}" in result.output
    assert "best epoch" in result.output and "lr" in result.output


@pytest.mark.slow
def test_same_seed_gives_same_results_on_cpu(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path
) -> None:
    study = make_study()
    values = []
    for db in ("a.db", "b.db"):
        url = f"sqlite:///{tmp_path / db}"
        assert cli("run", "--study", str(study), "--trials", "2", "--storage", url).exit_code == 0
        values.append(snapshot(url, "tiny"))
    assert values[0] == values[1]


def test_studies_lists_shipped_files(cli: Cli) -> None:
    result = cli("studies")
    assert result.exit_code == 0
    assert any(line.startswith("mnist-reg ") for line in result.output.splitlines())


def test_help_mentions_total_and_resume(cli: Cli) -> None:
    result = cli("run", "--help")
    text = " ".join(result.output.split())
    assert "TOTAL" in text and "re-running the same command" in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--study", "mnist-reg", "--trials", "abc"], "Invalid value for '--trials'"),
        (["export", "--study", "mnist-reg", "--format", "xml"], "Invalid value for '--format'"),
        (["run", "--study", "mnist-reg", "--trials", "1", "--trails", "2"], "No such option"),
        (["runn"], "No such command 'runn'"),
    ],
)
@pytest.mark.slow
def test_a_bad_option_is_one_line_too(args: list[str], fragment: str) -> None:
    cmd = [sys.executable, "-m", "hpsearch", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert_one_line_error(done, fragment, "--help')")
    assert done.returncode == 2


@pytest.mark.slow
def test_help_runs_as_a_subprocess_without_torch() -> None:
    code = "import sys; from hpsearch.cli import main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    result = subprocess.run(
        [sys.executable, "-m", "hpsearch", "--help"], capture_output=True, text=True, check=True
    )
    assert "run" in result.stdout


# ------------------------------------------------------------------ bad input


@pytest.mark.slow
def test_unknown_study_lists_known_ones(cli: Cli, stored: tuple[Path, str]) -> None:
    _, url = stored
    before = snapshot(url, "tiny")
    result = cli("run", "--study", "mnist-nope", "--trials", "3", "--storage", url)
    assert_one_line_error(result, "unknown study 'mnist-nope'", "mnist-reg")
    assert snapshot(url, "tiny") == before


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda t: t.replace("[training]", "[training\n"), ("malformed TOML", "line 6")),
        (lambda t: t + "colour = 'red'\n", ("unknown key 'pruner.colour'",)),
        (
            lambda t: t.replace("low = 3e-4, high = 3e-3", "low = 3e-3, high = 3e-4"),
            ("low must be ≤ high",),
        ),
        (
            lambda t: t.replace("low = 3e-4, high = 3e-3", "low = 0, high = 3e-3"),
            ("> 0 on a log scale",),
        ),
        (
            lambda t: t.replace("high = 0.5, step", "high = 1.5, step"),
            ("search.dropout.high must be < 1 but got 1.5",),
        ),
        (lambda t: t.replace("[128, 256]", "[]"), ("search.batch_size.choices is empty",)),
        (
            lambda t: t.replace("max_epochs = 2", "max_epochs = 2\nmetric = 'valid_loss'"),
            ("set to maximize", "minimizes valid_loss"),
        ),
    ],
)
@pytest.mark.slow
def test_bad_study_file_changes_nothing(
    cli: Cli, stored: tuple[Path, str], edit: Callable[[str], str], fragments: tuple[str, ...]
) -> None:
    path, url = stored
    before = snapshot(url, "tiny")
    path.write_text(edit(path.read_text()))
    result = cli("run", "--study", str(path), "--trials", "4", "--storage", url)
    assert_one_line_error(result, *fragments)
    assert snapshot(url, "tiny") == before


@pytest.mark.parametrize("trials", ["0", "-3"])
@pytest.mark.slow
def test_non_positive_trials(cli: Cli, stored: tuple[Path, str], trials: str) -> None:
    path, url = stored
    before = snapshot(url, "tiny")
    result = cli("run", "--study", str(path), "--trials", trials, "--storage", url)
    assert_one_line_error(
        result, f"Invalid value for '--trials': {trials} is not in the range x>=1"
    )
    assert snapshot(url, "tiny") == before


@pytest.mark.slow
def test_timeout_that_is_not_a_positive_number(cli: Cli, stored: tuple[Path, str]) -> None:
    study, url = stored
    args = ["run", "--study", str(study), "--trials", "3", "--storage", url, "--timeout", "nan"]
    assert_one_line_error(cli(*args), "--timeout must be > 0 seconds but got nan")
    assert len(snapshot(url, "tiny")) == 2


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
@pytest.mark.slow
def test_non_positive_threads(cli: Cli, stored: tuple[Path, str], workers: list[str]) -> None:
    path, url = stored
    before = snapshot(url, "tiny")
    result = cli(
        "run", "--study", str(path), "--trials", "4", "--storage", url, "--threads", "0", *workers
    )
    assert_one_line_error(result, "Invalid value for '--threads': 0 is not in the range x>=1")
    assert snapshot(url, "tiny") == before


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("not a url", ("bad storage URL",)),
        ("nosuchdb://x/y", ("no database driver for 'nosuchdb'",)),
        ("sqlite:////nonexistent/folder/x.db", ("folder /nonexistent/folder does not exist",)),
        (
            "postgresql+psycopg://bob:s3cret@127.0.0.1:1/db",
            ("cannot open the database at postgresql+psycopg://bob:***@127.0.0.1:1/db",),
        ),
        ("postgresql+psycopg://bob:s3cret@x@127.0.0.1:abc/db", ("bad storage URL", "://***@127")),
        (
            "postgresql+psycopg://bob@127.0.0.1:1/db?password=s3cret",
            ("cannot open the database at", "db?password=***"),
        ),
        ("sqlite://", ("in-memory SQLite keeps no trial", "sqlite:///hpsearch.db")),
        ("sqlite:///:memory:", ("in-memory SQLite keeps no trial",)),
    ],
)
def test_bad_or_unreachable_storage(
    cli: Cli, make_study: Callable[..., Path], url: str, fragments: tuple[str, ...]
) -> None:
    result = cli("run", "--study", str(make_study()), "--trials", "1", "--storage", url)
    assert_one_line_error(result, *fragments)
    assert "s3cret" not in result.output


@pytest.mark.parametrize("command", ["best", "export"])
@pytest.mark.slow
def test_reading_with_another_metric_is_refused(
    cli: Cli, stored: tuple[Path, str], command: str
) -> None:
    study, url = stored
    study.write_text(study.read_text().replace("[training]", '[training]\nmetric = "valid_loss"'))
    assert_one_line_error(
        cli(command, "--study", str(study), "--storage", url),
        "was run to maximize valid_accuracy but the study file says valid_loss",
    )


def test_reading_leaves_an_optuna_database_unchanged(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path
) -> None:
    import sqlite3

    db = tmp_path / "plain.db"
    plain = optuna.create_study(study_name="tiny", storage=f"sqlite:///{db}", direction="maximize")
    plain.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    before = db.read_bytes()
    result = cli("best", "--study", str(make_study()), "--storage", f"sqlite:///{db}")
    assert result.exit_code == 0, result.output
    assert db.read_bytes() == before  # not switched to WAL, nothing written
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.slow
def test_rerun_with_no_threads(cli: Cli, stored: tuple[Path, str]) -> None:
    study, url = stored
    args = ["rerun", "--study", str(study), "--trial", "0", "--storage", url, "--threads", "0"]
    assert_one_line_error(cli(*args), "Invalid value for '--threads': 0 is not in the range")


def test_storage_that_is_not_a_database(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path
) -> None:
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 100)
    result = cli(
        "run", "--study", str(make_study()), "--trials", "1", "--storage", f"sqlite:///{junk}"
    )
    assert_one_line_error(result, "cannot use", "as a SQLite database")
    assert junk.read_text().startswith("these are my notes")


def test_missing_mnist_offline_says_where(
    make_study: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from hpsearch.cli import main

    empty = tmp_path / "empty"
    args = [
        "run",
        "--study",
        str(make_study()),
        "--trials",
        "1",
        "--storage",
        storage_url,
        "--data-dir",
        str(empty),
        "--device",
        "cpu",
        "--no-progress",
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert_one_line_error(
        result, f"MNIST not found in {empty / 'MNIST' / 'raw'}", "train-images-idx3-ubyte"
    )
    assert optuna.get_all_study_names(storage_url) == []


@pytest.mark.slow
def test_best_without_study_or_completed_trial(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    study = make_study(max_epochs=2, pruner='kind = "threshold"\nlower = 0.999\nn_warmup_steps = 0')
    other = make_study(name="other")
    assert (
        cli("create", "--study", str(other), "--trials", "1", "--storage", storage_url).exit_code
        == 0
    )
    assert_one_line_error(
        cli("best", "--study", str(study), "--storage", storage_url),
        "no study 'tiny'",
        "studies there: other",
        f"`hpsearch run --study {study}` first",  # the path it was given, which works as is
    )
    assert_one_line_error(
        cli("best", "--study", "mnist-reg", "--storage", storage_url),
        "`hpsearch run --study mnist-reg` first",
    )
    assert (
        cli("run", "--study", str(study), "--trials", "1", "--storage", storage_url).exit_code == 0
    )
    assert_one_line_error(
        cli("best", "--study", str(study), "--storage", storage_url),
        "no completed trial yet; all 1 finished trials were pruned; loosen [pruner]",
    )


@pytest.mark.parametrize(
    "command",
    [
        ("best",),
        ("report",),
        ("ranges",),
        ("export",),
        ("worker",),
        ("rerun", "--trial", "0"),
    ],
)
def test_reading_a_mistyped_sqlite_path_creates_nothing(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "trails.db"
    args = [*command, "--study", str(make_study()), "--storage", f"sqlite:///{typo}"]
    assert_one_line_error(cli(*args), f"no SQLite file {typo}", "check the --storage path")
    assert list(tmp_path.iterdir()) == [tmp_path / "tiny.toml"]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--device", "cuda:7"], "device 'cuda:7' is not available"),
        (["--workers", "2", "--device", "cuda:7"], "device 'cuda:7' is not available"),
        (["--gpus", "7"], "--gpus"),
        (["--gpus", "0", "--device", "cpu"], "--gpus runs the workers on GPUs but --device is cpu"),
        (["--workers-per-gpu", "0"], "Invalid value for '--workers-per-gpu': 0 is not in"),
        (["--data-dir", "MISSING"], "MNIST not found"),
        (["--workers", "2", "--data-dir", "MISSING"], "MNIST not found"),
    ],
)
def test_a_run_that_cannot_start_creates_nothing(
    make_study: Callable[..., Path],
    mnist_dir: Path,
    tmp_path: Path,
    extra: list[str],
    fragment: str,
) -> None:
    import torch
    from click.testing import CliRunner

    from hpsearch.cli import main

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a GPU 7")
    study = make_study()
    extra = [str(tmp_path / "missing") if arg == "MISSING" else arg for arg in extra]
    args = ["run", "--study", str(study), "--trials", "1", "--no-progress"]
    args += ["--storage", f"sqlite:///{tmp_path / 'trials.db'}", "--data-dir", str(mnist_dir)]
    result = CliRunner().invoke(main, [*args, *extra], catch_exceptions=False)
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == [study]  # no database, no artifact folder


@pytest.mark.slow
def test_shipped_study_runs_on_full_mnist(full_data_dir: Path, storage_url: str) -> None:
    from click.testing import CliRunner

    from hpsearch.cli import main

    args = [
        "run",
        "--study",
        "mnist-reg",
        "--trials",
        "1",
        "--max-epochs",
        "1",
        "--storage",
        storage_url,
        "--data-dir",
        str(full_data_dir),
        "--device",
        "cpu",
        "--no-progress",
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trial = optuna.load_study(study_name="mnist-reg", storage=storage_url).trials[0]
    assert trial.state.name == "COMPLETE" and len(trial.user_attrs["history"]) == 1
    # Above chance whatever the sampler drew: on 12,000 validation images chance is 0.1 ± 0.003;
    # Optuna 5.1's first TPE draw (dropout 0.5 in all six layers) reaches 0.124 in one epoch.
    assert trial.value > 0.11


@pytest.mark.slow
def test_a_closed_pipe_ends_quietly_with_status_0() -> None:
    """`hpsearch studies | head -1`: the reader leaving early is not an error, as with git log."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "studies"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the first line is written: every write meets a closed pipe
    errors = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, errors
    assert errors == ""


@pytest.mark.parametrize(
    ("artifacts", "fragment"),
    [
        ("a-file", "Directory '{path}' is a file"),  # click's own check
        ("a-file/weights", "cannot be created: {parent} is a file"),
    ],
)
def test_an_unusable_artifact_folder_is_refused_before_anything_is_stored(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path, artifacts: str, fragment: str
) -> None:
    """Found before the database exists, not after a trial failed on it."""
    (tmp_path / "a-file").write_text("not a folder")
    path = tmp_path / artifacts
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli(
        "run", "--study", str(make_study()), "--trials", "1", "--storage", url,
        "--artifacts", str(path),
    )  # fmt: skip
    assert_one_line_error(result, fragment.format(path=path, parent=path.parent))
    assert not (tmp_path / "trials.db").exists()


def test_a_negative_seed_is_refused(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path
) -> None:
    """In the study file or on the command line; nothing created."""
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    study = make_study()
    assert_one_line_error(
        cli("run", "--study", str(study), "--trials", "1", "--storage", url, "--seed", "-1"),
        "--seed must be ≥ 0 but got -1",
    )
    study.write_text(study.read_text().replace("seed = 3", "seed = -1"))
    assert_one_line_error(
        cli("run", "--study", str(study), "--trials", "1", "--storage", url),
        "seed must be ≥ 0 but got -1",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]


def test_show_prints_the_study_file_the_stored_study_runs_with(
    cli: Cli, make_study: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """--seed and an allowed change are in it, and it resumes the study as printed."""
    from hpsearch.spec import parse_spec

    path = make_study()
    create = ["create", "--study", str(path), "--trials", "2", "--storage", storage_url]
    assert cli(*create, "--seed", "11").exit_code == 0
    path.write_text(path.read_text().replace("high = 3e-3", "high = 1e-2"))
    assert cli(*create, "--seed", "11", "--allow-changed-spec").exit_code == 0
    shown = cli("show", "--study", str(path), "--storage", storage_url)
    assert shown.exit_code == 0, shown.output
    header, text = shown.output.split("\n", 1)
    assert header.startswith("# study 'tiny' as stored: every default filled in")
    printed = tmp_path / "shown.toml"
    printed.write_text(text)
    spec = parse_spec(text, printed)
    assert (spec.name, spec.seed, spec.search["lr"].high) == ("tiny", 11, 1e-2)  # type: ignore[union-attr]
    assert spec.training.patience == 2 and spec.training.optimizer == "adam"  # defaults filled
    again = cli("create", "--study", str(printed), "--trials", "2", "--storage", storage_url)
    assert again.exit_code == 0, again.output  # the same study: no "other settings"
    missing = cli("show", "--study", str(path), "--storage", f"sqlite:///{tmp_path / 'no.db'}")
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1
