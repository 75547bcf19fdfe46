"""Narrowing rounds kept on the study: each round's ranges written once, read by every process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpsearch import _keys
from hpsearch.storages._rdb import fail_stale_trials, insert_once

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study

    from hpsearch.samplers._narrowing import RoundRanges


def stored_round(storage: BaseStorage, study_id: int, number: int) -> RoundRanges | None:
    """Round `number` as the first process that computed it stored it, or None."""
    from hpsearch.samplers._narrowing import RoundRanges

    record = storage.get_study_user_attrs(study_id).get(f"{_keys.ROUND_PREFIX}{number}")
    if record is None:
        return None
    return RoundRanges(number, record["ranges"], tuple(record["notes"]))


def claim_round(storage: BaseStorage, study_id: int, mine: RoundRanges) -> RoundRanges:
    """Store this process's round unless another stored it first; the stored one either way."""
    from hpsearch.samplers._narrowing import RoundRanges

    key = f"{_keys.ROUND_PREFIX}{mine.number}"
    record = insert_once(storage, study_id, key, {"ranges": mine.ranges, "notes": list(mine.notes)})
    return RoundRanges(mine.number, record["ranges"], tuple(record["notes"]))


def keep_alive(study: Study, trial_id: int | None) -> None:
    """While a trial waits for a round: beat for it, and fail (and queue again) dead trials."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    storage = study._storage
    if not is_heartbeat_enabled(storage):
        return
    if trial_id is not None:
        storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
    fail_stale_trials(study)
