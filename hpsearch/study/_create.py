"""Creating a study with its manifest, or checking a resumed one against its study file."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from hpsearch import _keys
from hpsearch.errors import UsageError, arg
from hpsearch.spec import StudySpec, signature
from hpsearch.study._connect import connect
from hpsearch.study._options import RunOptions, require_total, with_overrides
from hpsearch.study._summary import RunSummary, summarize

if TYPE_CHECKING:
    import optuna

    from hpsearch.storages._tracking import TrackingRDBStorage


def ensure_study(
    storage: TrackingRDBStorage,
    spec: StudySpec,
    target: int,
    opts: RunOptions | None = None,
) -> None:
    """Create the study if needed (with its manifest), or check a resumed one against it.

    Records the total and the narrowing round length; a resumed study whose search space or
    data changed is refused unless `allow_changed_spec`, and then the change is recorded.
    """
    import optuna

    from hpsearch.objectives._data import data_files
    from hpsearch.samplers._factory import trials_per_round
    from hpsearch.study import _manifest as manifest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage, study_name=spec.name, direction=spec.direction, load_if_exists=True
    )
    attrs = study.user_attrs
    _check_lowered_total(study, attrs.get(_keys.TARGET_TRIALS), target)
    data = None
    if opts is not None and opts.hash_data and spec.objective is None:  # built-in data only
        data = manifest.data_hash(data_files(spec.data, opts.data_dir))
    if _keys.MANIFEST not in attrs:
        _record_creation(study, spec, opts, data)
    else:
        allow = opts is not None and opts.allow_changed_spec
        change = manifest.check(attrs, spec, data, allow)
        if change is not None:  # appended under a lock: concurrent resumes keep every record
            study_id = storage.get_study_id_from_name(spec.name)
            storage.append_study_user_attr(study_id, _keys.SPEC_CHANGES, change)
            study.set_user_attr(_keys.SIGNATURE, signature(spec))
    if data is not None and attrs.get(_keys.DATA_HASH) != data:
        study.set_user_attr(_keys.DATA_HASH, data)
    _name_metric(study, spec.metric)
    if attrs.get(_keys.TARGET_TRIALS) != target:
        study.set_user_attr(_keys.TARGET_TRIALS, target)
    if spec.sampler.kind == "narrowing" and _keys.TRIALS_PER_ROUND not in attrs:
        study.set_user_attr(_keys.TRIALS_PER_ROUND, trials_per_round(spec, target, None))


def _check_lowered_total(study: optuna.Study, stored: int | None, target: int) -> None:
    """A total below the stored one is fine down to what the study holds, not below it.

    --trials is the study's total, not how many more: `--trials 2` on a study of 3 is a slip.
    """
    from hpsearch.study._summary import finished_states

    if stored is None or target >= stored:
        return
    held = len(study.get_trials(deepcopy=False, states=finished_states()))
    if target < held:
        raise UsageError(
            f"study '{study.study_name}' already holds {held} finished trials of its total "
            f"{stored}, and {arg('trials')} is the study's total, not how many more: pass "
            f"{arg('trials', held + target)} to run {target} more, or {arg('trials', stored)} "
            "to finish it"
        )


def _record_creation(
    study: optuna.Study, spec: StudySpec, opts: RunOptions | None, data: str | None
) -> None:
    """The manifest, the search signature and the metric, written once when the study is new."""
    from hpsearch.study import _manifest as manifest

    device = opts.device if opts is not None else ""
    if opts is not None and opts.hash_data:  # a training run: record the real device
        from hpsearch.objectives._train import resolve_device

        device = str(resolve_device(opts.device))
    study.set_user_attr(_keys.MANIFEST, manifest.build(spec, device, data))
    study.set_user_attr(_keys.SIGNATURE, signature(spec))
    study.set_user_attr(_keys.STUDY_FILE_HASH, spec.text_hash)
    study.set_user_attr(_keys.METRIC, spec.metric)


def _name_metric(study: optuna.Study, metric: str) -> None:
    """Name the objective's value, so optuna-dashboard says valid_accuracy, not "Objective 0"."""
    import warnings

    import optuna

    if study.metric_names != [metric]:
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([metric])


def create_study(spec: StudySpec, opts: RunOptions) -> RunSummary:
    """Create (or update the total of) a study without running trials."""
    import optuna

    from hpsearch.objectives._factory import require_entry
    from hpsearch.study._optimize import fail_stale  # which imports this module

    spec = with_overrides(spec, opts)
    target = require_total(opts.trials)
    require_entry(spec)  # a study no worker could run is not created
    storage = connect(spec, opts)
    fail_stale(storage, spec.name)
    ensure_study(storage, spec, target, dataclasses.replace(opts, hash_data=False))
    return summarize(optuna.load_study(study_name=spec.name, storage=storage), target, 0)
