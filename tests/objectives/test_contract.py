"""The objective contract of docs/your-model.md, one documented behaviour per row (#28).

Like Optuna's sampler test cases, this is the list a user's objective may rely on: what `ctx`
gives, what `ctx.report` and `ctx.save_weights` do, what `test` gets, what `hpsearch.fit` does,
and how each way of breaking the contract fails the trial. Every row names the test that checks
it: a test of this file, or `FILE::test` for one in another file under tests/ (`[id]` picks a
parametrized case). `test_every_row_names_a_real_test` keeps the table honest.

The objective is contract_objective.py, copied next to each study file as a user's would be.
Behaviours about processes run real ones (`python -m hpsearch run --workers 2`, `rerun`).

| # | documented behaviour | checked by |
| - | -------------------- | ---------- |
| 1 | ctx.device is --device, a torch.device, in the run and in each worker process | test_ctx_is_what_the_docs_list |
| 2 | ctx.seed is the trial's seed, the one recorded on the trial | test_ctx_is_what_the_docs_list |
| 3 | ctx.data_dir is --data-dir, a Path, in every process | test_ctx_is_what_the_docs_list |
| 4 | ctx.max_epochs is objective.max_epochs | test_ctx_is_what_the_docs_list[one-process] |
| 5 | --max-epochs overrides it, in every worker process | test_ctx_is_what_the_docs_list[two-workers] |
| 6 | ctx.trial_number is the trial's number | test_ctx_is_what_the_docs_list |
| 7 | ctx.config is the [objective.config] table | test_ctx_is_what_the_docs_list |
| 8 | ctx.metric is objective.metric | test_ctx_is_what_the_docs_list |
| 9 | ctx.trial is the Optuna trial (its params, set_user_attr for anything else) | test_ctx_is_what_the_docs_list |
| 10 | params holds every searched value, typed; a conditional one only when suggested | test_user_objective.py::test_run_suggests_every_parameter_and_stores_what_the_function_reported |
| 11 | the seed is applied to torch, numpy and random before the call | test_the_seed_is_applied_before_the_call_in_every_process |
| 12 | the same trial number and seed draw the same numbers, in a worker process too | test_the_seed_is_applied_before_the_call_in_every_process |
| 13 | ctx.report stores each epoch's numbers as the trial's history | test_report_stores_the_history_and_reports_the_metric_to_the_pruner |
| 14 | ctx.report adds seconds when not given, keeps them when given | test_report_allows_skipped_epochs_and_keeps_given_seconds |
| 15 | skipping epochs is fine; tensors and numpy scalars are numbers | test_report_allows_skipped_epochs_and_keeps_given_seconds |
| 16 | ctx.report reports the study's metric to the pruner, each epoch | test_report_stores_the_history_and_reports_the_metric_to_the_pruner |
| 17 | ctx.report raises optuna.TrialPruned when the pruner says so: PRUNED, pruned_at_epoch | test_ctx_report_raises_trial_pruned |
| 18 | a trial falling behind is pruned after its first epoch | test_user_objective.py::test_ctx_report_prunes_a_trial_that_falls_behind |
| 19 | a report without the metric fails the trial with a line naming it | test_a_broken_contract_fails_the_trial_with_its_line[no-metric] |
| 20 | a metric that is not a number fails the trial | test_a_broken_contract_fails_the_trial_with_its_line[metric-not-a-number] |
| 21 | ... a list is not a number either | test_a_broken_contract_fails_the_trial_with_its_line[metric-a-list] |
| 22 | ... nor is any other reported value that is not a number | test_a_broken_contract_fails_the_trial_with_its_line[other-not-a-number] |
| 23 | ... nor is a string that reads as a number | test_a_broken_contract_fails_the_trial_with_its_line[metric-numeric-str] |
| 24 | ... nor a numpy or torch bool, here, in the return value and in test's results | test_bools_are_not_numbers_anywhere_user_code_hands_them_back |
| 25 | ... nor a tensor of many numbers: its line stays one line, cut short | test_a_broken_contract_fails_the_trial_with_its_line[metric-a-tensor] |
| 26 | epoch 0 fails the trial: epochs count from 1 | test_a_broken_contract_fails_the_trial_with_its_line[epoch-0] |
| 27 | an epoch that is not a whole number fails the trial | test_a_broken_contract_fails_the_trial_with_its_line[epoch-1.5] |
| 28 | a repeated epoch fails the trial | test_a_broken_contract_fails_the_trial_with_its_line[repeat] |
| 29 | an epoch out of order fails the trial | test_a_broken_contract_fails_the_trial_with_its_line[backwards] |
| 30 | an epoch past max_epochs fails the trial | test_a_broken_contract_fails_the_trial_with_its_line[past-max] |
| 31 | ... past --max-epochs, when it overrides max_epochs | test_a_broken_contract_fails_the_trial_with_its_line[past-max-epochs-option] |
| 32 | the bad report is never stored: history and pruner keep only the good epochs | test_a_broken_contract_fails_the_trial_with_its_line |
| 33 | a sanity-check epoch 1, then epoch 1, fails the trial (its "sanity" case) | test_user_objective.py::test_max_failures_in_a_row_stop_the_run_with_the_last_error |
| 34 | hpsearch's own errors print one line, no traceback | test_a_broken_contract_fails_the_trial_with_its_line |
| 35 | ... the same when a trial of a longer run fails | test_returned_values.py::test_an_error_of_hpsearch_in_a_trial_prints_one_line_not_a_traceback |
| 36 | an objective that raises fails the trial; its traceback is printed | test_a_broken_contract_fails_the_trial_with_its_line[raise] |
| 37 | returning NaN fails the trial: "not a finite number" | test_a_broken_contract_fails_the_trial_with_its_line[return-nan] |
| 38 | returning inf fails the trial | test_a_broken_contract_fails_the_trial_with_its_line[return-inf] |
| 39 | returning None fails the trial | test_a_broken_contract_fails_the_trial_with_its_line[return-none] |
| 40 | returning a string fails the trial | test_a_broken_contract_fails_the_trial_with_its_line[return-str] |
| 41 | ... a string that reads as a number too | test_a_broken_contract_fails_the_trial_with_its_line[return-numeric-str] |
| 42 | ... a dict too, and the line says to return the metric itself | test_a_broken_contract_fails_the_trial_with_its_line[return-dict] |
| 43 | a failed trial stores its error; best and export show it; the study goes on | test_user_objective.py::test_failed_trials_are_stored_with_their_error_and_the_study_goes_on |
| 44 | max_failures failures in a row stop the run with the last error | test_user_objective.py::test_max_failures_in_a_row_stop_the_run_with_the_last_error |
| 45 | the stop line's hint resumes once the code is fixed | test_user_objective.py::test_the_hint_after_max_failures_resumes_once_the_code_is_fixed |
| 46 | best_epoch is the first epoch with the best reported metric | test_report_stores_the_history_and_reports_the_metric_to_the_pruner |
| 47 | ... and export gives it | test_returned_values.py::test_export_has_the_best_epoch_of_a_users_objective |
| 48 | ctx.save_weights: a later call replaces the earlier file | test_a_later_save_weights_replaces_the_earlier |
| 49 | only the top keep_weights trials, and the best per choice, keep weights | test_only_the_top_keep_weights_trials_keep_weights |
| 50 | test gets the trial's params, a ctx with its seed on the CPU, its last weights | test_test_gets_the_trials_params_seed_cpu_and_last_weights |
| 51 | test runs once per trial; the result is recorded; none configured is said | test_user_objective.py::test_report_uses_the_test_function_once_and_says_when_there_is_none |
| 52 | report --retest evaluates again and replaces the record | test_returned_values.py::test_a_bad_record_from_an_older_version_is_shown_and_retest_replaces_it |
| 53 | test's per_class may be a dict keyed by class name | test_returned_values.py::test_per_class_as_a_dict_keyed_by_class_is_accepted |
| 54 | test's confusion may be a tensor | test_returned_values.py::test_a_tensor_confusion_matrix_draws_the_figure |
| 55 | anything else from test is one line naming objective.test; nothing recorded | test_returned_values.py::test_a_result_that_cannot_be_recorded_is_one_line_and_never_stored |
| 56 | test on a trial that never saved weights says why | test_returned_values.py::test_a_completed_trial_without_saved_weights_says_why |
| 57 | hpsearch.fit reports train_loss, valid_loss and valid_accuracy every epoch | test_fit_stops_early_and_restores_the_best_epoch |
| 58 | hpsearch.fit stops patience epochs after the best on validation loss | test_fit_stops_early_and_restores_the_best_epoch[valid_loss] |
| 59 | ... or on accuracy, with early_stopping="valid_accuracy" | test_fit_stops_early_and_restores_the_best_epoch[valid_accuracy] |
| 60 | hpsearch.fit restores the best epoch's weights and returns its metric | test_fit_stops_early_and_restores_the_best_epoch |
| 61 | best_epoch of a fit trial is the epoch hpsearch.fit restored | test_fit_stops_early_and_restores_the_best_epoch[loss-picks-accuracy] |
| 62 | rerun reproduces a trial exactly on the CPU, in a new process | test_rerun_reproduces_a_worker_trial_in_a_new_process |
| 63 | ... and uses the trial's own thread count | test_returned_values.py::test_rerun_uses_the_trials_own_thread_count |
| 64 | run --workers and create + worker import the entry in each process | test_user_objective.py::test_workers_and_a_joining_worker_import_the_entry |
| 65 | an entry or test that cannot take its arguments is one line at load | test_user_objective.py::test_a_bad_objective_or_when_is_one_line_and_creates_nothing |
| 66 | hpsearch.run(objective=fn) calls a function directly; workers refused | test_user_objective.py::test_hpsearch_run_takes_a_function_directly |
| 67 | Lightning's Report reports each validated epoch, prunes, keeps weights | integrations/test_lightning.py::test_the_example_prunes_keeps_one_row_per_epoch_and_reports |
| 68 | ... once per validated epoch, never the sanity check | integrations/test_lightning.py::test_report_reports_once_per_validated_epoch |
| 69 | a callback reporting the sanity check fails the trial in one line | integrations/test_lightning.py::test_a_callback_that_reports_the_sanity_check_fails_the_trial_in_one_line |
| 70 | a module that does not log the metric fails in one line naming it | integrations/test_lightning.py::test_a_module_that_does_not_log_the_metric_gets_reports_one_line |
"""  # noqa: E501

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from click.testing import CliRunner, Result
from toy_study import stored

from hpsearch import _keys
from hpsearch.cli import main
from hpsearch.objectives._context import as_number
from hpsearch.reporting._returned import ResultError, checked

Cli = Callable[..., Result]
HERE = Path(__file__).parent
CONTRACT = HERE / "contract_objective.py"
SEEN = "contract_seen"  # contract_objective.SEEN
NAME = "contract"
STUDY = """\
description = "the objective contract"
seed = 11
max_failures = {max_failures}
keep_weights = {keep_weights}

[objective]
entry = "contract.py:objective"
metric = "{metric}"
direction = "{direction}"
max_epochs = {max_epochs}
test = "contract.py:test"

[objective.config]
mode = "{mode}"
n = 64
nested = {{ label = "kept as written", sizes = [1, 2] }}
{config}
[search]
lr = {{ low = 0.05, high = 0.5, log = true }}
act = {{ choices = ["relu", "tanh"] }}

[sampler]
kind = "random"

[pruner]
{pruner}
"""


def write_study(
    folder: Path,
    mode: str = "ok",
    *,
    metric: str = "score",
    direction: str = "minimize",
    max_epochs: int = 3,
    keep_weights: int = 5,
    max_failures: int = 1,
    config: str = "",
    pruner: str = 'kind = "none"',
) -> Path:
    """contract.py and a study file naming it, in folder; returns the study file."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CONTRACT, folder / "contract.py")
    study = folder / f"{NAME}.toml"
    study.write_text(
        STUDY.format(
            mode=mode,
            metric=metric,
            direction=direction,
            max_epochs=max_epochs,
            keep_weights=keep_weights,
            max_failures=max_failures,
            config=config,
            pruner=pruner,
        )
    )
    return study


def hpsearch_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m hpsearch ...` as a user runs it: a new process."""
    command = [sys.executable, "-m", "hpsearch", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def trials(url: str) -> list[optuna.trial.FrozenTrial]:
    """The study's stored trials."""
    return stored(url, NAME)


def history(trial: optuna.trial.FrozenTrial) -> list[dict[str, float]]:
    """The trial's stored per-epoch history ([] when nothing was reported)."""
    return list(trial.user_attrs.get(_keys.HISTORY, []))


@dataclass(frozen=True)
class Ran:
    """A finished run of the contract study: its file, storage, folders and epochs."""

    study: Path
    url: str
    data_dir: Path
    artifacts: Path
    max_epochs: int


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """Five trials in this process (`--workers 1`), keep_weights = 1."""
    root = tmp_path_factory.mktemp("one-process")
    study = write_study(root / "project", keep_weights=1)
    data = root / "data"
    data.mkdir()
    url = f"sqlite:///{root / 'trials.db'}"
    args = ["run", "--study", str(study), "--trials", "5", "--storage", url, "--data-dir"]
    args += [str(data), "--device", "cpu", "--workers", "1", "--no-progress"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return Ran(study, url, data, root / "trials-artifacts", 3)


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """Four trials by `python -m hpsearch run --workers 2 --max-epochs 2`: two processes."""
    root = tmp_path_factory.mktemp("two-workers")
    meet = f'rendezvous = "{root / "pids"}"\n'  # each worker waits for the other's first trial
    study = write_study(root / "project", config=meet)
    data = root / "data"
    data.mkdir()
    url = f"sqlite:///{root / 'trials.db'}"
    done = hpsearch_process(
        "run", "--study", str(study), "--trials", "4", "--storage", url, "--data-dir", str(data),
        "--device", "cpu", "--workers", "2", "--threads", "1", "--max-epochs", "2",
        "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return Ran(study, url, data, root / "trials-artifacts", 2)


RUNS = pytest.mark.parametrize(
    "run", ["one_process", "two_workers"], ids=["one-process", "two-workers"]
)


# ------------------------------------------------------------------ the table


def table_rows(doc: str) -> list[tuple[int, str, str]]:
    """(number, behaviour, test) for every row of a table like the module docstring's."""
    rows = []
    for line in doc.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1], cells[2]))
    return rows


def missing_tests(doc: str) -> list[str]:
    """The table's rows whose test is not defined where it says (or its case is not there)."""
    missing = []
    for _, behaviour, named in table_rows(doc):
        where, _, name = named.rpartition("::")
        path = HERE.parent / where if "/" in where else HERE / (where or Path(__file__).name)
        base, _, case = name.partition("[")
        text = path.read_text() if path.is_file() else ""
        found = re.search(rf"^def {re.escape(base)}\(", text, re.MULTILINE)
        if not found or (case and f'"{case.removesuffix("]")}"' not in text):
            missing.append(f"{behaviour}: {named}")
    return missing


def test_every_row_names_a_real_test() -> None:
    """Each named test is defined in its file, and a `[case]` is one of its ids: no row rots."""
    rows = table_rows(__doc__ or "")
    assert [number for number, _, _ in rows] == list(range(1, len(rows) + 1))
    assert len(rows) >= 60
    assert missing_tests(__doc__ or "") == []
    broken = [
        "| 1 | a | test_no_such_test |",
        "| 2 | b | test_user_objective.py::test_nope |",
        "| 3 | c | test_ctx_is_what_the_docs_list[no-such-case] |",
        "| 4 | d | nowhere.py::test_ctx_is_what_the_docs_list |",
        "| 5 | e | test_ctx_is_what_the_docs_list[two-workers] |",
    ]
    assert len(missing_tests("\n".join(broken))) == 4  # the check finds each missing one


@pytest.mark.parametrize("value", [True, np.True_, torch.tensor(True), "0.5"], ids=repr)
def test_bools_are_not_numbers_anywhere_user_code_hands_them_back(value: object) -> None:
    """ctx.report, the return value and test's results share one rule: a bool is no number."""
    assert as_number(value) is None
    with pytest.raises(ResultError, match="it must be a number"):
        checked({"accuracy": value})
    assert as_number(np.float32(0.25)) == 0.25
    assert checked({"accuracy": torch.tensor(0.5)})["metrics"] == {"accuracy": 0.5}


# ------------------------------------------------------------------ what ctx gives


@pytest.mark.slow
@RUNS
def test_ctx_is_what_the_docs_list(run: str, request: pytest.FixtureRequest) -> None:
    """device, seed, data_dir, max_epochs (or --max-epochs), trial_number, config, metric, trial."""
    ran: Ran = request.getfixturevalue(run)
    config = tomllib.loads(ran.study.read_text())["objective"]["config"]
    done = trials(ran.url)
    assert [t.state.name for t in done] == ["COMPLETE"] * len(done) and len(done) >= 4
    for trial in done:
        seen = trial.user_attrs[SEEN]
        assert seen["device"] == "cpu" and seen["device_is_torch"]
        assert seen["seed"] == trial.user_attrs[_keys.SEED]
        assert Path(seen["data_dir"]).resolve() == ran.data_dir.resolve()
        assert seen["data_dir_is_path"]
        assert seen["max_epochs"] == ran.max_epochs
        assert [row["epoch"] for row in history(trial)] == list(range(1, ran.max_epochs + 1))
        assert seen["trial_number"] == seen["trial_attr_number"] == trial.number
        assert seen["config"] == config
        assert seen["metric"] == "score"
        assert seen["trial_type"] == "Trial" and seen["trial_is_optuna"]
        assert seen["params"] == seen["trial_params"] == trial.params
    assert len({t.user_attrs[_keys.SEED] for t in done}) == len(done)  # one seed per trial
    pids = {t.user_attrs[SEEN]["pid"] for t in done}
    if run == "one_process":
        assert pids == {os.getpid()}
    else:  # both worker processes ran trials, so each one's ctx was checked
        assert len(pids) == 2 and os.getpid() not in pids
        assert {t.user_attrs[_keys.WORKER] for t in done} == {"w0", "w1"}


def expected_draws(seed: int) -> dict[str, list[float]]:
    """What torch, numpy and random draw first once seeded with `seed` (as the objective does)."""
    rng = random.Random(seed)
    return {
        "torch": torch.rand(3, generator=torch.Generator().manual_seed(seed)).tolist(),
        "numpy": np.random.RandomState(seed).rand(3).tolist(),
        "random": [rng.random() for _ in range(3)],
    }


@pytest.mark.slow
def test_the_seed_is_applied_before_the_call_in_every_process(
    one_process: Ran, two_workers: Ran
) -> None:
    """The first draws of torch, numpy and random are the seed's, in this process or a worker's.

    Both studies have seed 11, so a trial number has the same seed, and the same draws, in both.
    """
    by_number = {t.number: t for t in trials(one_process.url)}
    for trial in [*by_number.values(), *trials(two_workers.url)]:
        seen = trial.user_attrs[SEEN]
        assert seen["draws"] == expected_draws(seen["seed"]), trial.number
    for trial in trials(two_workers.url):
        seen = trial.user_attrs[SEEN]
        twin = by_number[trial.number].user_attrs[SEEN]
        assert (twin["seed"], twin["draws"]) == (seen["seed"], seen["draws"])
        assert twin["pid"] != seen["pid"]  # another process, the same numbers


# ------------------------------------------------------------------ ctx.report


@pytest.mark.slow
def test_report_stores_the_history_and_reports_the_metric_to_the_pruner(one_process: Ran) -> None:
    """A row per epoch with the reported numbers and seconds; the metric is Optuna's each step."""
    for trial in trials(one_process.url):
        rows = history(trial)
        assert [row["epoch"] for row in rows] == [1, 2, 3]
        for row in rows:
            assert set(row) == {"epoch", "score", "train_loss", "seconds"}
            assert isinstance(row["seconds"], float) and 0 <= row["seconds"] < 60
        assert trial.intermediate_values == {row["epoch"]: row["score"] for row in rows}
        assert trial.value == rows[-1]["score"]
        best = min(row["score"] for row in rows)
        first = next(row["epoch"] for row in rows if row["score"] == best)
        assert trial.user_attrs[_keys.BEST_EPOCH] == first
        assert trial.user_attrs[_keys.EPOCHS] == 3


@pytest.mark.slow
def test_report_allows_skipped_epochs_and_keeps_given_seconds(cli: Cli, tmp_path: Path) -> None:
    """Epochs 1 and 3 of 3; a tensor and numpy scalars stored as floats; seconds=7.5 kept."""
    study = write_study(tmp_path / "project", "skip")
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(study), "--trials", "1", "--storage", url)
    assert result.exit_code == 0, result.output
    (trial,) = trials(url)
    assert trial.state.name == "COMPLETE" and trial.value == 0.125
    first, third = history(trial)
    added = first.pop("seconds")
    assert isinstance(added, float) and added >= 0
    assert first == {"epoch": 1, "score": 0.25, "extra": 2.0}
    assert third == {"epoch": 3, "score": 0.125, "seconds": 7.5}
    assert trial.intermediate_values == {1: 0.25, 3: 0.125}
    assert trial.user_attrs[_keys.BEST_EPOCH] == 3


@pytest.mark.slow
def test_ctx_report_raises_trial_pruned(cli: Cli, tmp_path: Path) -> None:
    """The pruner stops each trial at epoch 2: TrialPruned leaves ctx.report, and no more runs."""
    pruner = 'kind = "threshold"\nupper = 0.000001\nn_warmup_steps = 1'
    study = write_study(tmp_path / "project", pruner=pruner)
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(study), "--trials", "2", "--storage", url)
    assert result.exit_code == 0, result.output
    done = trials(url)
    assert [t.state.name for t in done] == ["PRUNED", "PRUNED"]
    for trial in done:
        assert trial.user_attrs["raised"] == "optuna.exceptions.TrialPruned"
        assert trial.user_attrs["after_report"] == 1  # the code after the pruning report never ran
        assert trial.user_attrs[_keys.PRUNED_AT_EPOCH] == 2
        rows = history(trial)
        assert [row["epoch"] for row in rows] == [1, 2]
        assert trial.intermediate_values == {row["epoch"]: row["score"] for row in rows}
        first_best = min(rows, key=lambda row: (row["score"], row["epoch"]))["epoch"]
        assert trial.user_attrs[_keys.BEST_EPOCH] == first_best
        assert _keys.ERROR not in trial.user_attrs


REPORT_LINE = "ReportError: ctx.report(epoch={epoch}){rest}"
ORDER = ": each epoch is reported once, in order; with Lightning, skip the sanity check " + (
    "(if trainer.sanity_checking: return)"
)
RANGE = ": the epoch must be between 1 and max_epochs = {n}; count epochs from 1 and stop at " + (
    "ctx.max_epochs"
)
# mode, extra run options, the trial's error line, the epochs left in its history, a traceback
BROKEN = [
    pytest.param(
        "no-metric", (),
        "ReportError: ctx.report(epoch=2) got train_loss but not score, the study's metric; "
        "report it, e.g. ctx.report(epoch, score=value)",
        [1], False, id="no-metric",
    ),
    pytest.param(
        "metric-not-a-number", (), "ReportError: ctx.report: score must be a number but got 'high'",
        [1], False, id="metric-not-a-number",
    ),
    pytest.param(
        "metric-a-list", (), "ReportError: ctx.report: score must be a number but got [0.5, 0.25]",
        [1], False, id="metric-a-list",
    ),
    pytest.param(
        "other-not-a-number", (), "ReportError: ctx.report: note must be a number but got 'fine'",
        [1], False, id="other-not-a-number",
    ),
    pytest.param(
        "metric-numeric-str", (), "ReportError: ctx.report: score must be a number but got '0.5'",
        [1], False, id="metric-numeric-str",
    ),
    pytest.param(
        "metric-a-tensor", (),
        "ReportError: ctx.report: score must be a number but got tensor([0.0000, 0.0101, "
        "0.0202, 0.0303, 0.0404, 0.0505, 0...",
        [1], False, id="metric-a-tensor",
    ),
    pytest.param(
        "epoch-0", (), REPORT_LINE.format(epoch=0, rest=RANGE.format(n=3)), [], False, id="epoch-0"
    ),
    pytest.param(
        "epoch-1.5", (),
        "ReportError: ctx.report(epoch=1.5): the epoch must be a whole number counted from 1",
        [], False, id="epoch-1.5",
    ),
    pytest.param(
        "repeat", (), REPORT_LINE.format(epoch=1, rest=" after epoch 1" + ORDER), [1], False,
        id="repeat",
    ),
    pytest.param(
        "backwards", (), REPORT_LINE.format(epoch=2, rest=" after epoch 3" + ORDER), [1, 3], False,
        id="backwards",
    ),
    pytest.param(
        "past-max", (), REPORT_LINE.format(epoch=4, rest=RANGE.format(n=3)), [1], False,
        id="past-max",
    ),
    pytest.param(
        "past-max", ("--max-epochs", "2"), REPORT_LINE.format(epoch=3, rest=RANGE.format(n=2)),
        [1], False, id="past-max-epochs-option",
    ),
    pytest.param("raise", (), "RuntimeError: my bug in trial 0", [1], True, id="raise"),
    pytest.param(
        "return-nan", (), "ValueError: the objective returned nan, not a finite number", [1],
        False, id="return-nan",
    ),
    pytest.param(
        "return-inf", (), "ValueError: the objective returned inf, not a finite number", [1],
        False, id="return-inf",
    ),
    pytest.param(
        "return-none", (), "ValueError: the objective returned None, not a finite number", [1],
        False, id="return-none",
    ),
    pytest.param(
        "return-str", (), "ValueError: the objective returned 'high', not a finite number", [1],
        False, id="return-str",
    ),
    pytest.param(
        "return-numeric-str", (), "ValueError: the objective returned '0.5', not a finite number",
        [1], False, id="return-numeric-str",
    ),
    pytest.param(
        "return-dict", (),
        "ValueError: the objective returned {'score': 0.5}, not a finite number; return the "
        "metric itself, e.g. return result['score']",
        [1], False, id="return-dict",
    ),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "options", "line", "epochs", "traceback"), BROKEN)
def test_a_broken_contract_fails_the_trial_with_its_line(
    cli: Cli,
    tmp_path: Path,
    mode: str,
    options: tuple[str, ...],
    line: str,
    epochs: list[int],
    traceback: bool,
) -> None:
    """FAIL with the one documented line as its error; only the good epochs stored before it.

    max_failures = 1, so the run stops at once, quoting the line.
    """
    study = write_study(tmp_path / "project", mode)
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(study), "--trials", "1", "--storage", url, *options)
    (trial,) = trials(url)
    assert trial.state.name == "FAIL", result.output
    assert trial.user_attrs[_keys.ERROR] == line
    assert [row["epoch"] for row in history(trial)] == epochs
    assert all(isinstance(row["score"], float) for row in history(trial))
    assert trial.intermediate_values == {row["epoch"]: row["score"] for row in history(trial)}
    assert result.exit_code == 1
    printed = result.output.strip().splitlines()
    assert printed[0] == f"trial #0 failed: {line}"
    assert ("Traceback" in result.output) == traceback, result.output
    if not traceback:  # hpsearch's own one line, then the stop line, which quotes it
        assert len(printed) == 2, result.output
    assert printed[-1].startswith("Error: stopped after 1 failed trials") and line in printed[-1]


# ------------------------------------------------------------------ ctx.save_weights and test


def kept_files(ran: Ran) -> dict[int, Path]:
    """The trials whose weights file is still in the artifact folder, by number."""
    files = {path.name: path for path in ran.artifacts.rglob("*") if path.is_file()}
    kept = {}
    for trial in trials(ran.url):
        artifact = trial.user_attrs.get(_keys.WEIGHTS_ARTIFACT)
        if artifact in files:
            kept[trial.number] = files.pop(artifact)
    assert not files, f"files of no trial's current weights: {sorted(files)}"
    return kept


@pytest.mark.slow
def test_a_later_save_weights_replaces_the_earlier(one_process: Ran) -> None:
    """Three saves per trial, one file each: the last, epoch 3's; no earlier file is left."""
    kept = kept_files(one_process)
    assert kept
    for path in kept.values():
        weights = torch.load(path, weights_only=True)
        assert int(weights["saved_epoch"]) == 3


@pytest.mark.slow
def test_only_the_top_keep_weights_trials_keep_weights(one_process: Ran) -> None:
    """keep_weights = 1: the best trial, and the best of each `act` choice; the rest lose theirs."""
    done = sorted(trials(one_process.url), key=lambda t: t.value)  # type: ignore[arg-type,return-value]
    best_per_act = {}
    for trial in done:
        best_per_act.setdefault(trial.params["act"], trial.number)
    expected = {done[0].number} | set(best_per_act.values())
    assert len(expected) < len(done)
    assert all(t.user_attrs.get(_keys.WEIGHTS_ARTIFACT) for t in done)  # each one saved
    assert set(kept_files(one_process)) == expected


@pytest.mark.slow
def test_test_gets_the_trials_params_seed_cpu_and_last_weights(
    one_process: Ran, tmp_path: Path
) -> None:
    """`hpsearch report` calls test(params, ctx, weights) with the evaluated trial's own."""
    args = ["report", "--study", str(one_process.study), "--storage", one_process.url, "-o"]
    args += [str(tmp_path / "report"), "--data-dir", str(one_process.data_dir)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name=NAME, storage=one_process.url)
    by_number = {t.number: t for t in study.trials}
    records = {
        int(key.rsplit(":", 1)[1]): value["metrics"]
        for key, value in study.user_attrs.items()
        if key.startswith(_keys.TEST_RESULTS)
    }
    assert study.best_trial.number in records
    for number, metrics in records.items():
        trial = by_number[number]
        assert metrics["saved_epoch"] == 3  # the last save of the trial
        assert metrics["seed"] == trial.user_attrs[_keys.SEED]
        assert metrics["on_cpu"] == 1.0
        assert metrics["trial_number"] == number
        assert metrics["lr"] == trial.params["lr"]
        assert metrics["relu"] == float(trial.params["act"] == "relu")


# ------------------------------------------------------------------ hpsearch.fit


@pytest.mark.slow
@pytest.mark.parametrize(
    ("early_stopping", "metric", "direction"),
    [
        ("valid_loss", "valid_loss", "minimize"),
        ("valid_accuracy", "valid_accuracy", "maximize"),
        ("valid_loss", "valid_accuracy", "maximize"),
    ],
    ids=["valid_loss", "valid_accuracy", "loss-picks-accuracy"],
)
def test_fit_stops_early_and_restores_the_best_epoch(
    cli: Cli, tmp_path: Path, early_stopping: str, metric: str, direction: str
) -> None:
    """Validation improves for 3 epochs, then worsens: fit stops patience = 2 epochs after its best.

    Every epoch is reported; the model ends with the best epoch's weights (its validation
    numbers are that epoch's, not the last's), the trial's value is the study's metric there,
    and best_epoch is that epoch, even where the metric itself peaked earlier.
    """
    config = f'early_stopping = "{early_stopping}"\n'
    study = write_study(
        tmp_path / "project", "fit", metric=metric, direction=direction, max_epochs=20,
        config=config,
    )  # fmt: skip
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(study), "--trials", "3", "--storage", url)
    assert result.exit_code == 0, result.output
    sign = 1 if early_stopping == "valid_loss" else -1
    restored_other_than_the_metric = False
    for trial in trials(url):
        rows = history(trial)
        assert [row["epoch"] for row in rows] == list(range(1, len(rows) + 1))
        for row in rows:
            assert set(row) == {"epoch", "train_loss", "valid_loss", "valid_accuracy", "seconds"}
        assert trial.intermediate_values == {row["epoch"]: row[metric] for row in rows}
        best_score = min(sign * row[early_stopping] for row in rows)
        best = next(row for row in rows if sign * row[early_stopping] == best_score)
        assert len(rows) == best["epoch"] + 2 < 20  # stopped early, patience after the best
        assert trial.user_attrs[_keys.BEST_EPOCH] == best["epoch"]
        assert trial.value == best[metric]
        after = trial.user_attrs["after_fit"]
        assert after["valid_loss"] == pytest.approx(best["valid_loss"], rel=1e-6)
        assert after["valid_accuracy"] == pytest.approx(best["valid_accuracy"], rel=1e-6)
        assert after["valid_loss"] != pytest.approx(rows[-1]["valid_loss"], rel=1e-6)
        top = max(row[metric] for row in rows)
        first_top = next(row["epoch"] for row in rows if row[metric] == top)
        restored_other_than_the_metric |= direction == "maximize" and first_top != best["epoch"]
    assert restored_other_than_the_metric == (early_stopping != metric)


# ------------------------------------------------------------------ rerun


@pytest.mark.slow
def test_rerun_reproduces_a_worker_trial_in_a_new_process(two_workers: Ran) -> None:
    """A trial of the spawned worker, retrained by `python -m hpsearch rerun`: identical.

    Its value depends on the torch, numpy and random draws and on the recorded --max-epochs 2.
    """
    number = next(t.number for t in trials(two_workers.url) if t.user_attrs[_keys.WORKER] == "w1")
    done = hpsearch_process(
        "rerun", "--study", str(two_workers.study), "--trial", str(number), "--storage",
        two_workers.url, "--data-dir", str(two_workers.data_dir),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "identical: the trial reproduces exactly" in done.stdout, done.stdout
