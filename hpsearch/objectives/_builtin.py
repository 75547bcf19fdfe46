"""The shipped models as ordinary objective functions: the same contract a user's function has.

`data.dataset` picks one; each builds its model from the study file's [model] and [training]
tables and the trial's parameters, and trains it with the public `fit`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.objectives._context import TrialContext
from hpsearch.objectives._fit import fit

if TYPE_CHECKING:
    import torch
    from torch import nn

    from hpsearch.objectives._data import Splits
    from hpsearch.spec import DataSpec, StudySpec, TrainingSpec

Loader = Callable[["DataSpec", Path, "torch.device"], "Splits"]
TestLoader = Callable[["DataSpec", Path, "torch.device"], tuple["torch.Tensor", "torch.Tensor"]]
Builder = Callable[["StudySpec", "TrainingSpec", int], "nn.Module"]
Augment = Callable[["TrainingSpec"], Callable[["torch.Tensor"], "torch.Tensor"] | None]


@dataclass(frozen=True)
class Classifier:
    """A built-in image classifier: its data, its model and its augmentation."""

    load: Loader
    load_test: TestLoader
    build: Builder
    augment: Augment

    def objective(self, params: dict[str, Any], ctx: TrialContext) -> float:
        """Build the study's model for these parameters and train it on the study's data."""
        from hpsearch.objectives._train import make_optimizer

        spec = ctx.spec
        splits = self.load(spec.data, ctx.data_dir, ctx.device)  # cached: loaded once per process
        hp = hyperparameters(spec, params)
        model = self.build(spec, hp, len(splits.classes)).to(ctx.device)
        optimizer = make_optimizer(
            hp.optimizer, model.parameters(), hp.lr, hp.weight_decay, hp.momentum
        )
        value = fit(
            model,
            optimizer,
            train=(splits.x_train, splits.y_train),
            valid=(splits.x_valid, splits.y_valid),
            ctx=ctx,
            batch_size=hp.batch_size,
            patience=hp.patience,
            early_stopping=hp.early_stopping,
            l1=hp.l1,
            schedule=hp.schedule,
            mixup=hp.mixup,
            augment=self.augment(hp),
        )
        ctx.save_weights(model)
        return value

    def test(
        self, params: dict[str, Any], ctx: TrialContext, weights: Mapping[str, torch.Tensor]
    ) -> dict[str, Any]:
        """Accuracy on the held-out test split, per class, and the confusion matrix."""
        import torch

        spec = ctx.spec
        x, y = self.load_test(spec.data, ctx.data_dir, torch.device("cpu"))
        classes = list(self.load(spec.data, ctx.data_dir, torch.device("cpu")).classes)
        model = self.build(spec, hyperparameters(spec, params), len(classes))
        model.load_state_dict(weights)
        model.eval()
        with torch.inference_mode():
            batches = [model(x[i : i + 4096]).argmax(1) for i in range(0, len(x), 4096)]
        predicted = torch.cat(batches)
        confusion = torch.zeros(len(classes), len(classes), dtype=torch.int64)
        confusion.index_put_((y, predicted), torch.ones_like(y), accumulate=True)
        per_class = confusion.diag().float() / confusion.sum(1).clamp(min=1).float()
        return {
            "accuracy": float((predicted == y).float().mean().item()),
            "per_class": per_class.tolist(),
            "confusion": confusion.tolist(),
            "classes": classes,
        }


def hyperparameters(spec: StudySpec, params: Mapping[str, Any]) -> TrainingSpec:
    """The study file's training settings with the trial's searched values in their place."""
    return dataclasses.replace(spec.training, **params)


def classifier_for(spec: StudySpec) -> Classifier:
    """The built-in model of the study's data set."""
    from hpsearch.objectives._data import image_splits, image_test_split, mnist_splits, mnist_test

    if spec.data.dataset == "mnist":
        from hpsearch.objectives import _mnist

        return Classifier(mnist_splits, mnist_test, _mnist.build, lambda hp: None)
    from hpsearch.objectives import _flowers

    return Classifier(image_splits, image_test_split, _flowers.build, _flowers.augment)
