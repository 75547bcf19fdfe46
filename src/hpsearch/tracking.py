"""An RDB storage that remembers the trials this process created, to fail them on Ctrl-C.

Optuna marks a trial failed when Ctrl-C lands inside the objective, but not when it lands
between creating the trial and calling the objective; that trial would stay RUNNING forever.
"""

from __future__ import annotations

from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import TrialState


class TrackingRDBStorage(RDBStorage):
    """RDBStorage plus the ids of the trials created through this instance."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.created: list[int] = []

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        """Create the trial and remember its id."""
        trial_id = super().create_new_trial(study_id, template_trial)
        self.created.append(trial_id)
        return trial_id

    def fail_own_running(self) -> list[int]:
        """Mark this process's trials that are still RUNNING as failed; returns their ids."""
        failed = []
        for trial_id in self.created:
            try:
                if self.get_trial(trial_id).state == TrialState.RUNNING:
                    self.set_trial_state_values(trial_id, TrialState.FAIL)
                    failed.append(trial_id)
            except Exception:  # the database may be gone too; the heartbeat will catch it
                continue
        return failed
