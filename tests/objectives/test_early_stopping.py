"""Early stopping by validation loss or accuracy: the best epoch picked, restored and paced."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpsearch.errors import UsageError
from hpsearch.objectives._data import mnist_splits
from hpsearch.objectives._mnist import build_mlp
from hpsearch.objectives._train import FitConfig, FitResult, evaluate, fit, make_optimizer
from hpsearch.spec import DataSpec

EPOCHS = 8


def train(mnist_dir: Path, early_stopping: str, patience: int) -> tuple[FitResult, torch.nn.Module]:
    """A small MLP on the MNIST subset, overfitting quickly (a large lr, no regularizer)."""
    torch.manual_seed(0)
    splits = mnist_splits(DataSpec(train_size=2400, valid_size=600), mnist_dir, torch.device("cpu"))
    model = build_mlp((256, 128), batch_norm=False, dropout=0.0)
    optimizer = make_optimizer("adam", model.parameters(), lr=3e-3, weight_decay=0.0, momentum=0)
    cfg = FitConfig(EPOCHS, 64, patience, seed=0, early_stopping=early_stopping)
    result = fit(model, optimizer, splits, cfg, lambda stats: None)
    assert evaluate(model, splits.x_valid, splits.y_valid)[1] == result.best.valid_accuracy
    return result, model


@pytest.mark.slow
def test_by_accuracy_the_best_epoch_is_the_most_accurate_one(mnist_dir: Path) -> None:
    by_loss, _ = train(mnist_dir, "valid_loss", patience=EPOCHS)
    by_accuracy, _ = train(mnist_dir, "valid_accuracy", patience=EPOCHS)
    # Same seed, same batches: the two runs train identically and differ only in the pick.
    scores = [[(s.valid_loss, s.valid_accuracy) for s in r.history] for r in (by_loss, by_accuracy)]
    assert scores[0] == scores[1]
    history = by_accuracy.history
    assert by_loss.best.valid_loss == min(s.valid_loss for s in history)
    assert by_accuracy.best.valid_accuracy == max(s.valid_accuracy for s in history)
    # The first epoch with the top accuracy (a later tie does not replace it).
    top = max(s.valid_accuracy for s in history)
    assert by_accuracy.best.epoch == next(s.epoch for s in history if s.valid_accuracy == top)
    # In this seeded run the two rules pick different epochs, so the test tells them apart.
    assert by_accuracy.best.epoch != by_loss.best.epoch


@pytest.mark.slow
def test_by_accuracy_patience_counts_from_the_most_accurate_epoch(mnist_dir: Path) -> None:
    result, _ = train(mnist_dir, "valid_accuracy", patience=2)
    history = result.history
    assert len(history) == EPOCHS or len(history) - result.best.epoch == 2
    assert all(s.valid_accuracy <= result.best.valid_accuracy for s in history)


def test_an_unknown_early_stopping_is_one_line(mnist_dir: Path) -> None:
    splits = mnist_splits(DataSpec(train_size=2400, valid_size=600), mnist_dir, torch.device("cpu"))
    model = build_mlp((8,), batch_norm=False, dropout=0.0)
    optimizer = make_optimizer("sgd", model.parameters(), lr=0.1, weight_decay=0.0, momentum=0)
    cfg = FitConfig(1, 32, 1, seed=0, early_stopping="accuracy")
    with pytest.raises(UsageError, match="early_stopping must be valid_loss or valid_accuracy"):
        fit(model, optimizer, splits, cfg, lambda stats: None)
