"""A user's own objective through every command: the study file's [objective] and ctx."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import Result
from toy_study import stored

import hpsearch
from hpsearch.spec import Choice, FloatRange, IntRange

Cli = Callable[..., Result]

# ------------------------------------------------------------------ the study file


def test_free_parameter_names_take_their_type_from_the_range(toy: Callable[..., Path]) -> None:
    """Integers stay integers, choices keep their values, `when` is kept in file order."""
    spec = hpsearch.load_spec(str(toy()))
    assert spec.metric == "valid_accuracy" and spec.direction == "maximize"
    assert spec.max_epochs == 3 and dict(spec.objective.config) == {"mode": "ok", "n": 512}  # type: ignore[union-attr]
    assert spec.search["width"] == IntRange(4, 32)
    assert spec.search["lr"] == FloatRange(0.01, 1.0, log=True)
    assert spec.search["act"] == Choice(("relu", "tanh"))
    assert spec.search["dropout"].when == (("act", ("relu",)),)
    assert list(spec.search) == ["lr", "width", "act", "dropout"]


ENTRY = 'entry = "toy.py:objective"'
WHEN = 'when = { act = "relu" }'
BAD_STUDIES = [
    (
        ENTRY,
        'entry = "missing.py:objective"',
        "the file missing.py does not exist",
    ),
    (
        ENTRY,
        'entry = "toy.py:objectiv"',
        "toy.py has no function 'objectiv'; it defines",
    ),
    (
        ENTRY,
        'entry = "toy.py:math"',
        "toy.py:math is a module, not a function",
    ),
    (
        ENTRY,
        'entry = "toy.py:build"',
        "cannot be called as build(params, ctx)",
    ),
    (
        ENTRY,
        'entry = "no_such_module:objective"',
        "importing module no_such_module failed: ModuleNotFoundError",
    ),
    (
        'test = "toy.py:test"',
        'test = "toy.py:objective"',
        "cannot be called as objective(params, ctx, weights)",
    ),
    (
        WHEN,
        'when = { activation = "relu" }',
        "names 'activation', which is not a choices parameter declared before dropout",
    ),
    (
        WHEN,
        'when = { act = "gelu" }',
        "search.dropout.when.act = 'gelu' is not one of its choices",
    ),
    (
        WHEN,
        "when = { width = 8 }",
        "names 'width', which is not a choices parameter",
    ),
    (
        "[sampler]",
        "[training]\nlr = 0.1\n[sampler]",
        "[training] is for the built-in models, not a study with [objective]",
    ),
    (
        'metric = "valid_accuracy"',
        'metric = "valid_accuracy"\nmetrics = 1',
        "unknown key 'objective.metrics'",
    ),
    (
        "width = { low = 4, high = 32 }",
        'width = { low = 4, high = 32, grow = "high" }',
        "search.width.grow needs hard limits",
    ),
    (
        'act = { choices = ["relu", "tanh"] }',
        'act = { choices = ["relu", 1] }',
        "search.act.choices mixes types",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_STUDIES)
def test_a_bad_objective_or_when_is_one_line_and_creates_nothing(
    cli: Cli, toy: Callable[..., Path], tmp_path: Path, old: str, new: str, message: str
) -> None:
    """Found when the study file is loaded: before any database or folder exists."""
    study = toy()
    assert old in study.read_text()
    study.write_text(study.read_text().replace(old, new))
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(study), "--trials", "2", "--storage", url)
    assert result.exit_code != 0
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1
    assert message in result.output, result.output
    assert str(study) in result.output  # the file is named
    assert not (tmp_path / "trials.db").exists() and not (tmp_path / "trials-artifacts").exists()


def test_an_entry_module_that_fails_to_import_is_named_with_its_error(
    cli: Cli, toy: Callable[..., Path], tmp_path: Path
) -> None:
    """The module and the exception's one-line message; no traceback."""
    study = toy()
    (study.parent / "toy.py").write_text("import torch\nraise RuntimeError('no GPU today')\n")
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(study), "--trials", "2", "--storage", url)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "objective.entry: importing toy.py failed: RuntimeError: no GPU today" in result.output
    assert not (tmp_path / "trials.db").exists()


def test_studies_lists_a_user_objective_without_importing_it(
    toy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hpsearch studies` reads every file; a user's code is imported only when it runs."""
    from hpsearch.spec import read_spec

    study = toy()
    (study.parent / "toy.py").write_text("raise RuntimeError('imported')\n")
    spec = read_spec(str(study))
    assert spec.objective is not None and spec.objective.entry == "toy.py:objective"


# ------------------------------------------------------------------ running it


@pytest.mark.slow
def test_run_suggests_every_parameter_and_stores_what_the_function_reported(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Types, the conditional parameter, the seed, the history, the weights, the manifest."""
    record = tmp_path / "seen.txt"
    monkeypatch.setenv("TOY_RECORD", str(record))
    study = toy()
    result = cli("run", "--study", str(study), "--trials", "6", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    assert "study toy-study: 6/6 trials finished" in result.output
    trials = stored(storage_url)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 6
    for trial in trials:
        assert isinstance(trial.params["width"], int) and 4 <= trial.params["width"] <= 32
        assert ("dropout" in trial.params) == (trial.params["act"] == "relu")
        history = trial.user_attrs["history"]
        assert [h["epoch"] for h in history] == [1, 2, 3]
        assert history[-1]["valid_accuracy"] == trial.value
        assert trial.user_attrs["weights_artifact"]
    seen = [line.split(" ", 3) for line in record.read_text().splitlines()]
    for number, seed, torch_seed, names in seen:  # seeded before the call, and told to the function
        assert seed == torch_seed == str(trials[int(number)].user_attrs["seed"])
        assert names == str(sorted(trials[int(number)].params))
    manifest = optuna.load_study(study_name="toy-study", storage=storage_url).user_attrs["manifest"]
    assert manifest["objective"]["entry"] == "toy.py:objective"
    assert manifest["objective"]["config"] == {"mode": "ok", "n": 512}
    assert len(manifest["objective"]["entry_source_hash"]) == 16
    assert max(t.value for t in trials) > 0.8  # type: ignore[type-var]  # it really learns


@pytest.mark.slow
def test_a_changed_entry_file_is_a_spec_change(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """Editing the objective's code changes what the trials measure, as a study file would."""
    study = toy()
    assert (
        cli("run", "--study", str(study), "--trials", "1", "--storage", storage_url).exit_code == 0
    )
    code = study.parent / "toy.py"
    code.write_text(code.read_text() + "\n# a different model now\n")
    result = cli("run", "--study", str(study), "--trials", "2", "--storage", storage_url)
    assert result.exit_code != 0 and "objective.entry.source" in result.output
    assert len(stored(storage_url)) == 1
    allowed = cli(
        "run", "--study", str(study), "--trials", "2", "--storage", storage_url,
        "--allow-changed-spec",
    )  # fmt: skip
    assert allowed.exit_code == 0, allowed.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("raise-odd", "ValueError: boom in trial {n}"),
        ("nan-odd", "ValueError: the objective returned nan, not a finite number"),
    ],
)
def test_failed_trials_are_stored_with_their_error_and_the_study_goes_on(
    cli: Cli, toy: Callable[..., Path], storage_url: str, mode: str, error: str
) -> None:
    """A raising or NaN trial is FAIL with its error; best and export show it; the total is met."""
    study = toy(mode=mode)
    result = cli("run", "--study", str(study), "--trials", "3", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    trials = stored(storage_url)
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert len([t for t in trials if t.state.name == "COMPLETE"]) == 3 and failed
    assert all(t.user_attrs["error"] == error.format(n=t.number) for t in failed)
    best = cli("best", "--study", str(study), "--storage", storage_url)
    assert f"#{failed[-1].number}: {error.format(n=failed[-1].number)}" in best.output
    export = cli("export", "--study", str(study), "--storage", storage_url)
    assert error.format(n=1) in export.output


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("raise", "ValueError: boom in trial 1"),
        ("nan", "ValueError: the objective returned nan, not a finite number"),
        ("no-metric", "ctx.report(epoch=1) got train_loss but not valid_accuracy"),
        ("sanity", "ctx.report(epoch=1) after epoch 1: each epoch is reported once, in order"),
        ("from-0", "ctx.report(epoch=0): the epoch must be between 1 and max_epochs = 3"),
        ("past-max", "ctx.report(epoch=4): the epoch must be between 1 and max_epochs = 3"),
    ],
)
def test_max_failures_in_a_row_stop_the_run_with_the_last_error(
    cli: Cli, toy: Callable[..., Path], storage_url: str, mode: str, error: str
) -> None:
    """A broken objective stops after max_failures trials, one line, nothing left RUNNING."""
    study = toy(mode=mode, max_failures=2)
    result = cli("run", "--study", str(study), "--trials", "5", "--storage", storage_url)
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: stopped after 2 failed trials in a row (max_failures = 2)")
    assert error in last
    assert [t.state.name for t in stored(storage_url)] == ["FAIL", "FAIL"]


BUG = """
def objective(params, ctx):  # a bug the user fixes after the run stops
    raise RuntimeError("bug in my objective")
"""


@pytest.mark.slow
def test_the_hint_after_max_failures_resumes_once_the_code_is_fixed(
    toy: Callable[..., Path], storage_url: str
) -> None:
    """Fix the objective, then follow the printed hint as printed: the study resumes.

    Each run is a new process, as for a user (one process would keep the old module).
    """
    study = toy(max_failures=2)
    code = study.parent / "toy.py"
    fixed = code.read_text()
    code.write_text(fixed + BUG)
    command = [sys.executable, "-m", "hpsearch", "run", "--study", str(study), "--trials", "3"]
    command += ["--storage", storage_url, "--workers", "1", "--no-progress"]
    stopped = subprocess.run(command, capture_output=True, text=True)
    assert stopped.returncode == 1
    hint = stopped.stderr.strip().splitlines()[-1]
    assert "fix the objective, then resume with the same command and --allow-changed-spec" in hint
    code.write_text(fixed)
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 1 and "objective.entry.source" in refused.stderr
    resumed = subprocess.run([*command, "--allow-changed-spec"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [t.state.name for t in stored(storage_url)] == ["FAIL"] * 2 + ["COMPLETE"] * 3


@pytest.mark.slow
def test_rerun_reproduces_a_user_trial_exactly(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """The recorded parameters and seed, the same function: the same value on the CPU."""
    study = toy()
    assert (
        cli("run", "--study", str(study), "--trials", "2", "--storage", storage_url).exit_code == 0
    )
    result = cli("rerun", "--study", str(study), "--trial", "1", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    assert "identical: the trial reproduces exactly" in result.output


@pytest.mark.slow
def test_commands_that_only_read_need_the_study_file_not_its_code(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """best, status and export read storage alone (a laptop watching a cluster)."""
    study = toy()
    assert (
        cli("run", "--study", str(study), "--trials", "2", "--storage", storage_url).exit_code == 0
    )
    (study.parent / "toy.py").write_text("raise RuntimeError('imported')\n")
    for command in ("best", "status", "export"):  # new processes: nothing imported before
        args = [command, "--study", str(study), "--storage", storage_url]
        done = subprocess.run([sys.executable, "-m", "hpsearch", *args], capture_output=True)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert b"imported" not in done.stdout + done.stderr, command


@pytest.mark.slow
def test_report_uses_the_test_function_once_and_says_when_there_is_none(
    cli: Cli, toy: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    """The selected trial's weights go to objective.test once; without it, the page says so."""
    study = toy()
    assert (
        cli("run", "--study", str(study), "--trials", "3", "--storage", storage_url).exit_code == 0
    )
    out = tmp_path / "report"
    result = cli("report", "--study", str(study), "--storage", storage_url, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "(evaluated now and recorded)" in result.output
    page = (out / "index.html").read_text()
    assert 'id="test-accuracy"' in page and "<td>loss</td>" in page
    assert not (out / "confusion_matrix.png").exists()  # toy's test returns no matrix
    stored_study = optuna.load_study(study_name="toy-study", storage=storage_url)
    record = stored_study.user_attrs[f"test_results:{stored_study.best_trial.number}"]
    assert set(record["metrics"]) == {"accuracy", "loss"} and record["metrics"]["accuracy"] > 0.8
    again = cli("report", "--study", str(study), "--storage", storage_url, "-o", str(out))
    assert "(as recorded)" in again.output
    study.write_text(study.read_text().replace('test = "toy.py:test"\n', ""))
    untested = f"sqlite:///{tmp_path / 'untested.db'}"
    assert cli("run", "--study", str(study), "--trials", "1", "--storage", untested).exit_code == 0
    result = cli("report", "--study", str(study), "--storage", untested, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "no test evaluation configured (objective.test)" in result.output
    assert "No test evaluation is configured" in (out / "index.html").read_text()


@pytest.mark.slow
def test_narrowing_shrinks_a_users_ranges(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """Rounds of a user's parameters: round 1's lr range lies inside round 0's and is narrower."""
    keys = "trials_per_round = 6\nmin_keep = 2\nmin_complete = 2"
    study = toy(sampler="narrowing", sampler_keys=keys)
    result = cli("run", "--study", str(study), "--trials", "12", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    trials = stored(storage_url)
    first, second = (trials[n].user_attrs["narrowing_ranges"] for n in (0, 6))
    assert first["lr"] == {"low": 0.01, "high": 1.0}
    assert 0.01 <= second["lr"]["low"] < second["lr"]["high"] <= 1.0
    assert second["lr"]["high"] / second["lr"]["low"] < 100
    assert isinstance(second["width"]["low"], int)
    ranges = cli("ranges", "--study", str(study), "--storage", storage_url)
    assert ranges.exit_code == 0 and ranges.output.splitlines()[0].split()[:4] == [
        "round", "trials", "completed", "best",
    ]  # fmt: skip


@pytest.mark.slow
def test_workers_and_a_joining_worker_import_the_entry(
    cli: Cli, toy: Callable[..., Path], storage_url: str, mnist_dir: Path
) -> None:
    """`run --workers 2` and `create` + `worker`: each process imports toy.py itself."""
    study = toy()
    result = cli(
        "run", "--study", str(study), "--trials", "4", "--storage", storage_url, "--workers", "2",
        "--threads", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(t.state.name for t in stored(storage_url))[:4] == ["COMPLETE"] * 4
    other = storage_url.replace("trials.db", "other.db")
    assert cli("create", "--study", str(study), "--trials", "2", "--storage", other).exit_code == 0
    worker = cli(
        "worker", "--study", str(study), "--storage", other, "--device", "cpu", "--no-progress"
    )
    assert worker.exit_code == 0, worker.output
    assert [t.state.name for t in stored(other)] == ["COMPLETE", "COMPLETE"]


# ------------------------------------------------------------------ from Python


@pytest.mark.slow
def test_hpsearch_run_takes_a_function_directly(toy: Callable[..., Path], storage_url: str) -> None:
    """A notebook's function, no entry needed; worker processes could not import it."""
    study = toy()
    study.write_text(study.read_text().replace('entry = "toy.py:objective"\n', ""))
    calls: list[int] = []

    def objective(params: dict[str, object], ctx: hpsearch.TrialContext) -> float:
        calls.append(ctx.trial_number)
        ctx.report(1, valid_accuracy=0.5)
        return 0.5 + ctx.trial_number / 100

    summary = hpsearch.run(study, 3, storage=storage_url, objective=objective, progress=False)
    assert calls == [0, 1, 2] and summary.finished == 3
    assert summary.best is not None and summary.best.number == 2
    with pytest.raises(hpsearch.UsageError, match="objective is a function of this process"):
        hpsearch.run(study, 4, storage=storage_url, objective=objective, workers=2)
    with pytest.raises(hpsearch.SpecError, match=r"objective\.entry is missing"):
        hpsearch.run(study, 4, storage=storage_url, progress=False)


@pytest.mark.slow
def test_ctx_report_prunes_a_trial_that_falls_behind(
    cli: Cli, toy: Callable[..., Path], storage_url: str
) -> None:
    """The study's pruner acts on what the function reports: stopped after epoch 1."""
    study = toy()
    pruner = '[pruner]\nkind = "threshold"\nlower = 0.999\nn_warmup_steps = 0\n'
    study.write_text(study.read_text().replace('[pruner]\nkind = "none"\n', pruner))
    result = cli("run", "--study", str(study), "--trials", "3", "--storage", storage_url)
    assert result.exit_code == 0, result.output
    trials = stored(storage_url)
    assert [t.state.name for t in trials] == ["PRUNED"] * 3
    assert all(t.user_attrs["pruned_at_epoch"] == 1 for t in trials)
    assert all(len(t.user_attrs["history"]) == 1 and t.user_attrs["epochs"] == 1 for t in trials)
