"""One objective per data set and model; `make_objective` picks it from the study file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from hpsearch.spec import StudySpec

if TYPE_CHECKING:
    import torch


def make_objective(
    spec: StudySpec, data_dir: Path, device: torch.device
) -> Callable[[optuna.Trial], float]:
    """The objective for the study's data set, with its data already loaded."""
    if spec.data.dataset == "flowers":
        from hpsearch.objectives import flowers

        return flowers.make_objective(spec, data_dir, device)
    from hpsearch.objectives import mnist

    return mnist.make_objective(spec, data_dir, device)
