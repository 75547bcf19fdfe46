"""One objective per data set and model; the study file's dataset picks it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.spec import StudySpec

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore

    from hpsearch.objectives._base import ObjectiveKind


def kind_for(spec: StudySpec) -> ObjectiveKind:
    """The data loading, model and augmentation of the study's data set."""
    if spec.data.dataset == "flowers":
        from hpsearch.objectives import _flowers as flowers

        return flowers.KIND
    from hpsearch.objectives import _mnist as mnist

    return mnist.KIND


def make_objective(
    spec: StudySpec, data_dir: Path, device: torch.device, store: ArtifactStore | None = None
) -> Callable[[optuna.Trial], float]:
    """The objective for the study's data set, with its data already loaded."""
    from hpsearch.objectives import _base as base

    return base.make_objective(spec, kind_for(spec), data_dir, device, store)
