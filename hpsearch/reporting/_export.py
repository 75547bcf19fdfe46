"""One record per trial, as CSV or JSON, with the values exactly as stored."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import _keys

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

BASE_COLUMNS = ("number", "state", "value")
ATTR_COLUMNS = (
    _keys.EPOCHS,
    _keys.BEST_EPOCH,
    _keys.SECONDS,
    _keys.PRUNED_AT_EPOCH,
    _keys.ERROR,
    _keys.HOST,
    _keys.DEVICE,
    _keys.SEED,
    _keys.NARROWING_ROUND,
    _keys.NARROWING_RANGES,
)
TIME_COLUMNS = ("datetime_start", "datetime_complete")


def record(trial: FrozenTrial, params: list[str], history: bool) -> dict[str, Any]:
    """A flat record: number, state, value, every parameter, the trial's attributes."""
    row: dict[str, Any] = {"number": trial.number, "state": trial.state.name, "value": trial.value}
    row.update({f"param_{name}": trial.params.get(name) for name in params})
    row.update({name: trial.user_attrs.get(name) for name in ATTR_COLUMNS})
    times = (trial.datetime_start, trial.datetime_complete)
    for column, when in zip(TIME_COLUMNS, times, strict=True):
        row[column] = when.isoformat() if when else None
    if history:
        row[_keys.HISTORY] = trial.user_attrs.get(_keys.HISTORY, [])
    return row


def records(study: optuna.Study, history: bool) -> list[dict[str, Any]]:
    """Every trial of the study, in trial-number order."""
    trials = study.get_trials(deepcopy=False)
    params = sorted({name for t in trials for name in t.params})
    return [record(t, params, history) for t in sorted(trials, key=lambda t: t.number)]


def to_csv(study: optuna.Study) -> str:
    """CSV text; dicts (narrowing ranges) are written as JSON, missing values as empty cells."""
    rows = records(study, history=False)
    out = io.StringIO()
    columns = list(rows[0]) if rows else [*BASE_COLUMNS, *ATTR_COLUMNS, *TIME_COLUMNS]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
        )
    return out.getvalue()


def to_json(study: optuna.Study) -> str:
    """JSON text with each trial's per-epoch history."""
    payload = {
        "study": study.study_name,
        "direction": study.direction.name.lower(),
        "trials": records(study, history=True),
    }
    return json.dumps(payload, indent=1, default=str)


def write_whole(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: a failed write leaves the old file intact."""
    if path.exists() and not path.is_file():  # a device or a pipe (/dev/stdout): write into it
        path.write_text(text, encoding="utf-8")
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.is_file():
            tmp.unlink()
