"""Running a study: open storage, check it, load data once, optimize up to the total."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.errors import StorageError, UsageError
from hpsearch.spec import StudySpec
from hpsearch.storage import DEFAULT_STORAGE, masked, open_storage, stored_direction

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class RunOptions:
    """Command-line choices that shape one run without changing the study file."""

    trials: int
    storage: str = DEFAULT_STORAGE
    data_dir: Path = Path("data")
    device: str = "auto"
    seed: int | None = None
    timeout: float | None = None
    max_epochs: int | None = None
    progress: bool = True


@dataclass(frozen=True)
class RunSummary:
    """Where the study stands after a run."""

    name: str
    target: int
    complete: int
    pruned: int
    failed: int
    best: FrozenTrial | None
    seconds: float

    @property
    def finished(self) -> int:
        """Trials that count toward the total: completed and pruned."""
        return self.complete + self.pruned


def with_overrides(spec: StudySpec, opts: RunOptions) -> StudySpec:
    """The spec with --seed and --max-epochs applied."""
    if opts.seed is not None:
        spec = dataclasses.replace(spec, seed=opts.seed)
    if opts.max_epochs is not None:
        training = dataclasses.replace(spec.training, max_epochs=opts.max_epochs)
        spec = dataclasses.replace(spec, training=training)
    return spec


def check_options(opts: RunOptions) -> None:
    """Reject values click cannot range-check for us with a one-line message."""
    if opts.trials < 1:
        raise UsageError(
            f"--trials must be ≥ 1 but got {opts.trials}; give the study's total, e.g. --trials 200"
        )
    if opts.max_epochs is not None and opts.max_epochs < 1:
        raise UsageError(f"--max-epochs must be ≥ 1 but got {opts.max_epochs}")
    if opts.timeout is not None and opts.timeout <= 0:
        raise UsageError(f"--timeout must be > 0 seconds but got {opts.timeout:g}")


def run_study(
    spec: StudySpec, opts: RunOptions, notify: Callable[[str], None] | None = None
) -> RunSummary:
    """Run trials until the study holds `opts.trials` finished ones (or the timeout).

    `notify` receives one-line notes from the sampler (e.g. a range stuck at an edge); by
    default they are written above the progress bar.
    """
    import optuna

    from hpsearch.objectives import make_objective
    from hpsearch.objectives.base import trial_seed
    from hpsearch.progress import TrialProgress
    from hpsearch.pruners import make_pruner
    from hpsearch.samplers import TRIALS_PER_ROUND_ATTR, make_sampler, trials_per_round
    from hpsearch.train import resolve_device

    check_options(opts)
    notify = notify or _write
    spec = with_overrides(spec, opts)
    started = time.perf_counter()
    storage = open_storage(opts.storage)
    check_direction(storage, spec, opts.storage)
    if _count(storage, spec.name, _finished_states()) >= opts.trials:
        return summarize(optuna.load_study(study_name=spec.name, storage=storage), opts.trials, 0)
    # A resumed run must not replay the first run's random draws: mix in the trials so far.
    sampler_seed = trial_seed(spec.seed, _count(storage, spec.name, None))
    objective = make_objective(spec, opts.data_dir, resolve_device(opts.device))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    stored = _study_attrs(storage, spec.name).get(TRIALS_PER_ROUND_ATTR)
    round_length = trials_per_round(spec, opts.trials, stored)
    study = optuna.create_study(
        storage=storage,
        study_name=spec.name,
        direction=spec.direction,
        sampler=make_sampler(spec, sampler_seed, round_length, notify),
        pruner=make_pruner(spec.pruner, spec.training.max_epochs),
        load_if_exists=True,
    )
    _record_spec(study, spec)
    if spec.sampler.kind == "narrowing" and stored is None:
        study.set_user_attr(TRIALS_PER_ROUND_ATTR, round_length)
    progress = TrialProgress(study, opts.trials, enabled=opts.progress)
    try:
        study.optimize(
            objective,
            timeout=opts.timeout,
            callbacks=[
                optuna.study.MaxTrialsCallback(opts.trials, states=_finished_states()),
                progress,
            ],
        )
    finally:
        progress.close()
    return summarize(study, opts.trials, time.perf_counter() - started)


def check_direction(storage: optuna.storages.RDBStorage, spec: StudySpec, url: str) -> None:
    """A stored study with the same name must optimize in the same direction."""
    stored = stored_direction(storage, spec.name)
    if stored is not None and stored != spec.direction:
        raise StorageError(
            f"study '{spec.name}' in {masked(url)} is set to {stored} but the study file "
            f"{spec.direction}s {spec.training.metric}; give the study file another name = ... "
            "or use another --storage"
        )


def _record_spec(study: optuna.Study, spec: StudySpec) -> None:
    """Keep the study file's text on the study the first time it is created."""
    if "study_file" not in study.user_attrs:
        study.set_user_attr("study_file", spec.text)
        study.set_user_attr("study_file_hash", spec.text_hash)
        study.set_user_attr("metric", spec.training.metric)


def _write(message: str) -> None:
    """Print a note without breaking the progress bar."""
    from tqdm import tqdm

    tqdm.write(message)


def _study_attrs(storage: optuna.storages.RDBStorage, name: str) -> dict[str, Any]:
    """A stored study's user attributes, or {} when it does not exist yet."""
    try:
        return storage.get_study_user_attrs(storage.get_study_id_from_name(name))
    except KeyError:
        return {}


def _finished_states() -> tuple[optuna.trial.TrialState, ...]:
    """Completed and pruned trials count toward --trials; failed ones are redone."""
    from optuna.trial import TrialState

    return (TrialState.COMPLETE, TrialState.PRUNED)


def _count(
    storage: optuna.storages.RDBStorage,
    name: str,
    states: tuple[optuna.trial.TrialState, ...] | None,
) -> int:
    """How many trials of a study (possibly absent) are in the given states."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False, states=states))


def summarize(study: optuna.Study, target: int, seconds: float) -> RunSummary:
    """Count trial states and pick the best completed trial."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return RunSummary(
        name=study.study_name,
        target=target,
        complete=len(complete),
        pruned=sum(t.state == TrialState.PRUNED for t in trials),
        failed=sum(t.state == TrialState.FAIL for t in trials),
        best=study.best_trial if complete else None,
        seconds=seconds,
    )
