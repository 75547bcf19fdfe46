"""The choices that shape one run without changing the study file, checked before any write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.errors import UsageError, arg
from hpsearch.spec import StudySpec, with_run_settings
from hpsearch.storages._rdb import DEFAULT_STORAGE

if TYPE_CHECKING:
    from hpsearch.objectives._runner import ObjectiveFn


@dataclass(frozen=True)
class RunOptions:
    """One run's settings: where trials are stored, where data lies, overrides, heartbeats."""

    trials: int | None
    storage: str = DEFAULT_STORAGE
    data_dir: Path = Path("data")
    device: str = "auto"
    seed: int | None = None
    timeout: float | None = None
    max_epochs: int | None = None
    progress: bool = True
    threads: int | None = None
    heartbeat: int = 10
    grace_period: int = 60
    worker_tag: str = ""
    allow_changed_spec: bool = False
    hash_data: bool = True
    artifacts: Path | None = None
    function: ObjectiveFn | None = None  # hpsearch.run(objective=...): called in this process
    verbose: bool = False  # Optuna's own log lines on standard error
    log_file: Path | None = None  # and in this file

    def artifact_dir(self) -> Path:
        """`artifacts`, or the default folder beside the SQLite file."""
        from hpsearch.storages._artifacts import default_dir

        return self.artifacts or default_dir(self.storage)


def with_overrides(spec: StudySpec, opts: RunOptions) -> StudySpec:
    """The spec with the run's seed and max_epochs applied."""
    return with_run_settings(spec, opts.seed, opts.max_epochs)


def require_total(trials: int | None) -> int:
    """The study's total, which running or creating a study needs."""
    if trials is None:
        raise UsageError(
            f"{arg('trials')} is required; give the study's total, e.g. {arg('trials', 200)}"
        )
    return trials


def check_options(opts: RunOptions) -> None:
    """Reject out-of-range values with one line each, before anything is created."""
    if opts.trials is not None and opts.trials < 1:
        raise UsageError(
            f"{arg('trials')} must be ≥ 1 but got {opts.trials}; give the study's total, "
            f"e.g. {arg('trials', 200)}"
        )
    if opts.seed is not None and opts.seed < 0:
        raise UsageError(f"{arg('seed')} must be ≥ 0 but got {opts.seed}")
    if opts.max_epochs is not None and opts.max_epochs < 1:
        raise UsageError(f"{arg('max_epochs')} must be ≥ 1 but got {opts.max_epochs}")
    if opts.timeout is not None and not opts.timeout > 0:  # nan too
        raise UsageError(f"{arg('timeout')} must be > 0 seconds but got {opts.timeout:g}")
    if opts.threads is not None and opts.threads < 1:
        raise UsageError(f"{arg('threads')} must be ≥ 1 but got {opts.threads}")
    if opts.log_file is not None and not opts.log_file.parent.is_dir():
        raise UsageError(
            f"{arg('log_file')} {opts.log_file}: the folder {opts.log_file.parent} does not "
            "exist; create it or choose another path"
        )
    if opts.heartbeat < 1 or opts.grace_period <= opts.heartbeat:
        raise UsageError(
            f"need 1 ≤ {arg('heartbeat')} < {arg('grace_period')} but got {opts.heartbeat} "
            f"and {opts.grace_period}"
        )
