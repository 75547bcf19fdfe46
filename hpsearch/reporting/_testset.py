"""The held-out test split, used once per trial and only after selection by validation.

Results are recorded on the study (user attribute `test_results`, keyed by trial number), so a
report shows the recorded figure and never re-evaluates silently.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import _keys
from hpsearch.errors import StorageError, arg

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.trial import FrozenTrial

    from hpsearch.spec import StudySpec


@dataclass(frozen=True)
class HeldOutResult:
    """One trial's weights on the test split."""

    trial: int
    accuracy: float
    per_class: list[float]
    confusion: list[list[int]]
    classes: list[str]
    evaluated_now: bool

    def as_record(self) -> dict[str, Any]:
        """What is stored on the study."""
        return {
            "trial": self.trial,
            "accuracy": self.accuracy,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "classes": self.classes,
        }


def recorded(study: optuna.Study, number: int) -> HeldOutResult | None:
    """The stored test result of a trial, if it was evaluated before."""
    record = (study.user_attrs.get(_keys.TEST_RESULTS) or {}).get(str(number))
    if record is None:
        return None
    return HeldOutResult(evaluated_now=False, **record)


def evaluate_on_test(
    study: optuna.Study,
    spec: StudySpec,
    trial: FrozenTrial,
    store: ArtifactStore,
    data_dir: Path,
) -> HeldOutResult:
    """The trial's test result: the recorded one, or evaluate its stored weights once and record."""
    import dataclasses

    import torch

    from hpsearch.objectives._factory import kind_for
    from hpsearch.storages._artifacts import load_weights
    from hpsearch.study._manifest import recorded_spec

    known = recorded(study, trial.number)
    if known is not None:
        return known
    spec = recorded_spec(study, spec, trial)  # the model this trial trained, after any change
    state = load_weights(store, trial)
    kind = kind_for(spec)
    x, y = kind.load_test(spec.data, data_dir, torch.device("cpu"))
    _check_same_data(study, spec, data_dir)
    classes = list(kind.load(spec.data, data_dir, torch.device("cpu")).classes)
    hp = dataclasses.replace(spec.training, **trial.params)
    model = kind.build(spec, hp, len(classes))
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise StorageError(
            f"the stored weights of trial #{trial.number} do not fit the model its study file "
            f"describes; the artifact folder may belong to another study (check {arg('artifacts')})"
        ) from None
    model.eval()
    with torch.inference_mode():
        predicted = torch.cat([model(x[i : i + 4096]).argmax(1) for i in range(0, len(x), 4096)])
    confusion = torch.zeros(len(classes), len(classes), dtype=torch.int64)
    confusion.index_put_((y, predicted), torch.ones_like(y), accumulate=True)
    per_class = (confusion.diag().float() / confusion.sum(1).clamp(min=1).float()).tolist()
    result = HeldOutResult(
        trial=trial.number,
        accuracy=float((predicted == y).float().mean().item()),
        per_class=per_class,
        confusion=confusion.tolist(),
        classes=classes,
        evaluated_now=True,
    )
    stored = dict(study.user_attrs.get(_keys.TEST_RESULTS) or {})
    stored[str(trial.number)] = result.as_record()
    study.set_user_attr(_keys.TEST_RESULTS, stored)
    return result


def _check_same_data(study: optuna.Study, spec: StudySpec, data_dir: Path) -> None:
    """The test figure is recorded for good, so it must come from the data the study used."""
    from hpsearch.objectives._data import data_files

    trained_on = study.user_attrs.get(_keys.DATA_HASH)
    files = data_files(spec.data, data_dir)
    here = _hash_once(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if trained_on and here != trained_on:
        raise StorageError(
            f"the data in {data_dir} is not what study '{spec.name}' was trained on (training "
            f"files hash {here}, recorded {trained_on}); point {arg('data_dir')} at the study's "
            "data"
        )


@functools.lru_cache(maxsize=4)
def _hash_once(files: tuple[tuple[str, int, int], ...]) -> str:
    """The data hash, read once per report for files whose size and mtime have not changed."""
    from hpsearch.study._manifest import data_hash

    return data_hash([Path(name) for name, _, _ in files])
