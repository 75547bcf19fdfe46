"""Retrain one stored trial from its recorded parameters and seed, to check it reproduces."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.errors import StorageError
from hpsearch.spec import StudySpec, parse_spec

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class RerunResult:
    """The stored value next to the retrained one."""

    number: int
    state: str
    stored: float | None
    retrained: float
    threads: int
    stored_threads: int | None
    device: str


def recorded_spec(study: optuna.Study, fallback: StudySpec) -> StudySpec:
    """The study file as recorded at creation (what the trials really ran), else the current.

    The run's --seed and --max-epochs are applied as recorded: they are not in the file's text.
    """
    record = study.user_attrs.get("manifest") or {}
    text = record.get("study_file")
    if not text:
        return fallback
    spec = parse_spec(text, Path(record.get("study_file_path") or fallback.path))
    epochs = record.get("max_epochs") or _signature_epochs(study)  # older manifests lack it
    training = dataclasses.replace(spec.training, max_epochs=epochs or spec.training.max_epochs)
    return dataclasses.replace(spec, seed=record.get("seed", spec.seed), training=training)


def _signature_epochs(study: optuna.Study) -> int | None:
    """max_epochs from the creation signature, when no recorded change could have altered it."""
    from hpsearch.manifest import CHANGES_ATTR, SIGNATURE_ATTR

    if study.user_attrs.get(CHANGES_ATTR):
        return None
    value = (study.user_attrs.get(SIGNATURE_ATTR) or {}).get("training.max_epochs")
    return int(value) if value else None


def rerun(
    study: optuna.Study, spec: StudySpec, number: int, data_dir: Path, device_name: str
) -> RerunResult:
    """Train trial `number` again with its parameters and seed; nothing is written to storage."""
    import optuna
    import torch

    from hpsearch.objectives import kind_for
    from hpsearch.objectives.base import train_model
    from hpsearch.train import resolve_device

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise StorageError(
            f"study '{study.study_name}' has no trial #{number}; its trials are "
            f"#0..#{max(trials, default=-1)}"
        )
    trial = trials[number]
    spec = recorded_spec(study, spec)
    device = resolve_device(device_name)
    kind = kind_for(spec)
    splits = kind.load(spec.data, data_dir, device)
    fixed = optuna.trial.FixedTrial(dict(trial.params), number=number)
    value, _ = train_model(fixed, spec, kind, splits, device)  # type: ignore[arg-type]
    return RerunResult(
        number=number,
        state=trial.state.name,
        stored=trial.value,
        retrained=value,
        threads=torch.get_num_threads(),
        stored_threads=trial.user_attrs.get("threads"),
        device=str(device),
    )
