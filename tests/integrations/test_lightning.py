"""hpsearch.integrations.lightning.Report: a LightningModule tuned through the real CLI.

The shipped example (studies/lightning/) trains on the committed MNIST subset with the
callback; hand-written callbacks and modules show the errors a user meets.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import Result

from repo import REPO, TEST_DATA

Cli = Callable[..., Result]
EXAMPLE = REPO / "studies" / "lightning"
IMPORT_ERROR = "hpsearch.integrations.lightning needs Lightning: pip install 'hpsearch[lightning]'"

# What a user might write instead of Report: beside the copied example, naming its module.
MISTAKES = '''\
from typing import Any

import lightning as L

from hpsearch.integrations.lightning import Report
from lightning_mnist import Classifier, loaders


class NaiveReport(L.Callback):
    """Reports at every validation's end: Lightning's sanity check included."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metric = trainer.callback_metrics["valid_accuracy"]
        self.ctx.report(trainer.current_epoch + 1, valid_accuracy=metric)


class Misnamed(Classifier):
    """Logs its accuracy under another name than the study's metric."""

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())


def objective(params: dict[str, Any], ctx: Any) -> float:
    mode = ctx.config["mode"]
    model = (Misnamed if mode == "misnamed" else Classifier)(
        params["hidden"], params["dropout"], params["lr"]
    )
    callback = NaiveReport(ctx) if mode == "naive" else Report(ctx)
    trainer = L.Trainer(
        max_epochs=ctx.max_epochs, callbacks=[callback], accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, *loaders(ctx, params["batch_size"]))
    return float(trainer.callback_metrics["valid_accuracy"])
'''


def copy_example(folder: Path, *edits: tuple[str, str]) -> Path:
    """The shipped example in `folder`: 1,000 training and 200 validation images, 3 epochs."""
    shutil.copytree(EXAMPLE, folder)
    study = folder / "lightning.toml"
    text = study.read_text()
    for old, new in [
        ("data_subset = 12000", "data_subset = 1200"),
        ("max_epochs = 8", "max_epochs = 3"),
        ("n_startup_trials = 3", "n_startup_trials = 2"),
        *edits,
    ]:
        assert old in text, old
        text = text.replace(old, new)
    study.write_text(text)
    return study


def trials(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="lightning", storage=url).trials


@pytest.mark.slow
def test_the_example_prunes_keeps_one_row_per_epoch_and_reports(
    cli: Cli, storage_url: str, tmp_path: Path
) -> None:
    """Two workers, the median pruner through Report, then best, report and an exact rerun."""
    study = str(copy_example(tmp_path / "lightning"))
    run = ["--study", study, "--storage", storage_url]
    result = cli("run", *run, "--trials", "6", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert "study lightning: 6/6 trials finished" in result.output
    stored = trials(storage_url)
    states = [t.state.name for t in stored]
    assert "RUNNING" not in states and "FAIL" not in states, states
    assert "PRUNED" in states and "COMPLETE" in states, states
    for trial in stored:
        epochs = [row["epoch"] for row in trial.user_attrs["history"]]
        if trial.state.name == "COMPLETE":
            assert epochs == [1, 2, 3]  # no sanity-check row, each epoch once
            assert trial.value == max(r["valid_accuracy"] for r in trial.user_attrs["history"])
            assert trial.user_attrs["weights_artifact"]
        else:
            assert epochs == list(range(1, trial.user_attrs["pruned_at_epoch"] + 1))
            assert epochs[-1] >= 2  # the median pruner's warm-up epoch is never pruned
        for row in trial.user_attrs["history"]:  # the epoch's training mean too, from epoch 1
            assert {"valid_accuracy", "valid_loss", "train_loss", "seconds"} <= set(row)
    data = ["--data-dir", str(TEST_DATA)]
    best = cli("best", *run)
    assert best.exit_code == 0 and "valid_accuracy" in best.output, best.output
    report = cli("report", *run, "-o", str(tmp_path / "report"), *data)
    assert report.exit_code == 0, report.output
    assert "test accuracy" in report.output and "(evaluated now and recorded)" in report.output
    complete = next(t for t in stored if t.state.name == "COMPLETE")
    rerun = cli("rerun", *run, "--trial", str(complete.number), *data)
    assert rerun.exit_code == 0, rerun.output
    assert "identical: the trial reproduces exactly" in rerun.output


def run_mistake(cli: Cli, tmp_path: Path, mode: str) -> tuple[Result, optuna.trial.FrozenTrial]:
    """One trial of MISTAKES in `mode`; the study stops after that failure."""
    folder = tmp_path / "mistakes"
    study = copy_example(
        folder,
        ('entry = "lightning_mnist.py:objective"', 'entry = "mistakes.py:objective"'),
        ("data_subset = 1200", f'data_subset = 1200\nmode = "{mode}"'),
        ("seed = 0", "seed = 0\nmax_failures = 1"),
    )
    (folder / "mistakes.py").write_text(MISTAKES)
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(study), "--trials", "2", "--storage", url)
    (trial,) = trials(url)
    return result, trial


@pytest.mark.slow
def test_a_callback_that_reports_the_sanity_check_fails_the_trial_in_one_line(
    cli: Cli, tmp_path: Path
) -> None:
    """The untrained model's sanity check is not stored as epoch 1 beside the real epoch 1."""
    result, trial = run_mistake(cli, tmp_path, "naive")
    error = (
        "ReportError: ctx.report(epoch=1) after epoch 1: each epoch is reported once, in order; "
        "with Lightning, skip the sanity check (if trainer.sanity_checking: return)"
    )
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: stopped after 1 failed trials in a row") and error in last
    assert trial.state.name == "FAIL" and trial.user_attrs["error"] == error
    assert [row["epoch"] for row in trial.user_attrs["history"]] == [1]  # one row, not two


@pytest.mark.slow
def test_a_module_that_does_not_log_the_metric_gets_reports_one_line(
    cli: Cli, tmp_path: Path
) -> None:
    """Report names the study's metric, what was logged, and where to log it."""
    result, trial = run_mistake(cli, tmp_path, "misnamed")
    error = (
        "ReportError: Report: the study's metric valid_accuracy was not logged in epoch 1 "
        "(logged: train_loss, val_acc); log it, e.g. self.log('valid_accuracy', ...) in "
        "validation_step"
    )
    assert result.exit_code == 1 and error in result.output.strip().splitlines()[-1]
    assert "Traceback" not in result.output
    assert trial.state.name == "FAIL" and trial.user_attrs["error"] == error
    assert "history" not in trial.user_attrs or not trial.user_attrs["history"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("trainer_args", "reported"),
    [
        ({}, [1, 2, 3, 4]),
        ({"check_val_every_n_epoch": 2}, [2, 4]),  # epochs without validation are skipped
        ({"val_check_interval": 0.5}, [1, 2, 3, 4]),  # two validations an epoch, one report
    ],
)
def test_report_reports_once_per_validated_epoch(
    trainer_args: dict[str, float], reported: list[int]
) -> None:
    """Directly, on tensors: Lightning's validation schedules become valid ctx.report calls."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    import hpsearch
    from hpsearch.integrations.lightning import Report

    found = importlib.util.spec_from_file_location("example", EXAMPLE / "lightning_mnist.py")
    assert found is not None and found.loader is not None
    example = importlib.util.module_from_spec(found)
    found.loader.exec_module(example)
    torch.manual_seed(0)
    x, y = torch.randn(256, 1, 28, 28), torch.randint(0, 10, (256,))
    data = DataLoader(TensorDataset(x, y), batch_size=32)
    trial = optuna.create_study(direction="maximize").ask()
    spec = hpsearch.load_spec(str(EXAMPLE / "lightning.toml"))
    ctx = hpsearch.TrialContext(trial, spec, torch.device("cpu"), 0, TEST_DATA)
    report = Report(ctx)
    trainer = L.Trainer(
        max_epochs=4, callbacks=[report], accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        **trainer_args,
    )  # fmt: skip
    trainer.fit(example.Classifier(16, 0.0, 1e-3), data, data)
    assert [row["epoch"] for row in ctx.history] == reported
    assert all("train_loss" in row for row in ctx.history)  # the epoch's mean, from the first
    best = max(ctx.history, key=lambda row: row["valid_accuracy"])
    assert report.best == best["valid_accuracy"] and report.best_epoch == best["epoch"]


def test_without_lightning_the_import_error_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One line naming the extra, not a traceback into Lightning's absence."""
    for name in ("lightning", "lightning.pytorch", "lightning.pytorch.trainer.states"):
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "hpsearch.integrations.lightning", raising=False)
    with pytest.raises(ModuleNotFoundError) as raised:
        importlib.import_module("hpsearch.integrations.lightning")
    assert str(raised.value) == IMPORT_ERROR
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


@pytest.mark.slow
def test_hpsearch_never_imports_lightning_itself() -> None:
    """`import hpsearch`, its integrations package and the CLI leave Lightning unloaded."""
    code = (
        "import sys, hpsearch, hpsearch.integrations; from hpsearch.cli import main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
