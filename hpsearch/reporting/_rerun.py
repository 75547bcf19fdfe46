"""Retrain one stored trial from its recorded parameters and seed, to check it reproduces."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch import _keys
from hpsearch.errors import StorageError
from hpsearch.spec import StudySpec
from hpsearch.study._manifest import recorded_spec

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
    stored_device: str | None = None

    def hint(self) -> str:
        """Why a rerun may differ: another device type draws other random numbers."""
        ran_on = (self.stored_device or self.device).split(":")[0]
        if ran_on != self.device.split(":")[0]:
            return f"; the trial ran on {self.stored_device}, pass --device {ran_on}"
        if self.stored_threads not in (None, self.threads):
            return f"; the trial ran with {self.stored_threads} threads: leave --threads out"
        return ""


def rerun(
    study: optuna.Study,
    spec: StudySpec,
    number: int,
    data_dir: Path,
    device_name: str,
    threads: int | None = None,
) -> RerunResult:
    """Train trial `number` again with its parameters and seed; nothing is written to storage.

    It trains with `threads` torch CPU threads, by default as many as the trial used (CPU
    results depend on the thread count).
    """
    import optuna
    import torch

    from hpsearch.objectives._factory import objective_function
    from hpsearch.objectives._runner import run_trial
    from hpsearch.objectives._train import resolve_device, set_threads

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        held = f"its trials are #0..#{max(trials)}" if trials else "it has no trials yet"
        raise StorageError(f"study '{study.study_name}' has no trial #{number}; {held}")
    trial = trials[number]
    set_threads(threads if threads is not None else trial.user_attrs.get(_keys.THREADS))
    spec = recorded_spec(study, spec, trial)
    device = resolve_device(device_name)
    fixed = optuna.trial.FixedTrial(dict(trial.params), number=number)
    function = objective_function(spec)
    value = run_trial(fixed, spec, function, data_dir, device, params=trial.params)  # type: ignore[arg-type]
    return RerunResult(
        number=number,
        state=trial.state.name,
        stored=trial.value,
        retrained=value,
        threads=torch.get_num_threads(),
        stored_threads=trial.user_attrs.get(_keys.THREADS),
        device=str(device),
        stored_device=trial.user_attrs.get(_keys.DEVICE),
    )
