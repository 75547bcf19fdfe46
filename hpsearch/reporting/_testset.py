"""The held-out test split, used once per trial and only after selection by validation.

Results are recorded on the study (user attribute `test_results`, keyed by trial number), so a
report shows the recorded figure and never re-evaluates silently.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import _keys
from hpsearch.errors import StorageError, arg
from hpsearch.reporting._returned import EXTRAS, ResultError, checked
from hpsearch.storages._rdb import insert_once

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.trial import FrozenTrial

    from hpsearch.objectives._context import TrialContext
    from hpsearch.spec import StudySpec


@dataclass(frozen=True)
class HeldOutResult:
    """One trial's weights evaluated on held-out data: what the study's test function returned."""

    trial: int
    metrics: dict[str, float]  # every number the test function returned
    per_class: list[float] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    evaluated_now: bool = False
    replaced: bool = False  # evaluated again by --retest, replacing the earlier record

    @property
    def headline(self) -> tuple[str, float]:
        """The number to show first: accuracy when there is one, else the first metric."""
        name = "accuracy" if "accuracy" in self.metrics else next(iter(self.metrics))
        return name, self.metrics[name]

    def as_record(self) -> dict[str, Any]:
        """What is stored on the study."""
        return {
            "trial": self.trial,
            "metrics": self.metrics,
            "per_class": self.per_class,
            "confusion": self.confusion,
            "classes": self.classes,
        }


def recorded(study: optuna.Study, number: int) -> HeldOutResult | None:
    """The stored test result of a trial, if it was evaluated before."""
    attrs = study.user_attrs
    record = attrs.get(f"{_keys.TEST_RESULTS}:{number}")  # one key per trial, written once
    record = record or (attrs.get(_keys.TEST_RESULTS) or {}).get(str(number))  # older studies
    return _from_record(record) if record else None


class BadRecord(ResultError):
    """A recorded test result hpsearch cannot show (left by an older version, or edited)."""


def _from_record(stored: Any) -> HeldOutResult:
    """A stored result, in either format hpsearch has written, checked as a new one would be."""
    record = dict(stored) if isinstance(stored, dict) else {}
    number = record.get("trial")
    if "metrics" not in record and "accuracy" in record:  # before several numbers
        record["metrics"] = {"accuracy": record.pop("accuracy")}
    where = f"the recorded test result of trial #{number}"
    try:
        if not isinstance(number, int) or not isinstance(record.get("metrics"), dict):
            raise ResultError(f"{where} is not a result: {stored!r:.60}")
        fields = checked({**record["metrics"], **_extras(record)}, where)
    except ResultError as exc:
        raise BadRecord(
            f"{exc}; evaluate it again with {arg('retest', True)}, which replaces the record"
        ) from None
    return HeldOutResult(number, evaluated_now=False, **fields)


def _extras(record: dict[str, Any]) -> dict[str, Any]:
    """The record's per_class, confusion and classes, where it has them (empty: absent)."""
    return {key: record[key] for key in EXTRAS if record.get(key)}


def evaluate_on_test(
    study: optuna.Study,
    spec: StudySpec,
    trial: FrozenTrial,
    store: ArtifactStore,
    data_dir: Path,
    retest: bool = False,
) -> HeldOutResult | None:
    """The trial's test result: the recorded one, or its stored weights evaluated once and recorded.

    None when the study has no test function (a user's objective without ``objective.test``).
    `retest` evaluates again and replaces the record (after fixing a test function); a record
    that cannot be shown raises `BadRecord`, whose message says so.
    """
    from hpsearch.objectives._factory import test_function
    from hpsearch.storages._artifacts import load_weights
    from hpsearch.study._manifest import recorded_spec

    known = None if retest else recorded(study, trial.number)
    if known is not None:
        return known
    spec = recorded_spec(study, spec, trial)  # the model this trial trained, after any change
    test = test_function(spec)
    if test is None:
        return None
    weights = load_weights(store, trial)
    try:
        returned = test(dict(trial.params), _context(spec, trial, data_dir), weights)
    except RuntimeError as exc:
        if "state_dict" not in str(exc):
            raise
        raise StorageError(
            f"the stored weights of trial #{trial.number} do not fit the model its study file "
            f"describes; the artifact folder may belong to another study (check {arg('artifacts')})"
        ) from None
    _check_same_data(study, spec, data_dir)  # after: missing data has its own clear message
    result = HeldOutResult(trial.number, evaluated_now=True, **checked(returned))
    key = f"{_keys.TEST_RESULTS}:{trial.number}"
    if retest:
        study.set_user_attr(key, result.as_record())
        return dataclasses.replace(result, replaced=True)
    kept = insert_once(study._storage, study._study_id, key, result.as_record())
    if kept != result.as_record():  # another report recorded it first: theirs is the figure
        return dataclasses.replace(_from_record(kept), evaluated_now=False)
    return result


def _context(spec: StudySpec, trial: FrozenTrial, data_dir: Path) -> TrialContext:
    """The context a test function gets: the trial's own seed and settings, on the CPU."""
    import optuna
    import torch

    from hpsearch.objectives._context import TrialContext

    return TrialContext(
        optuna.trial.FixedTrial(dict(trial.params), number=trial.number),  # type: ignore[arg-type]
        spec,
        torch.device("cpu"),
        int(trial.user_attrs.get(_keys.SEED, 0)),
        data_dir,
    )


def _check_same_data(study: optuna.Study, spec: StudySpec, data_dir: Path) -> None:
    """The test figure is recorded for good, so it must come from the data the study used."""
    from hpsearch.objectives._data import data_files

    if spec.objective is not None:
        return  # a user's objective reads its own data; hpsearch has no hash of it
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
