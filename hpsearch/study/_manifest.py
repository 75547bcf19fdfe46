"""What a study was made with: versions, device, study file, seed, data hash, search signature.

Recorded when the study is created; a resumed study whose search space or data differs is
refused unless the change is explicitly allowed, and then the change is recorded too.
"""

from __future__ import annotations

import functools
import hashlib
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import _keys
from hpsearch._paths import checkout_root
from hpsearch.errors import SpecError, StorageError, arg
from hpsearch.spec import (
    FORMAT_KEY,
    StudySpec,
    differences,
    objective_signature,
    parse_spec,
    signature,
    with_run_settings,
)
from hpsearch.version import __version__

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


def git_commit() -> str | None:
    """The commit of the hpsearch checkout this code runs from, marked '+dirty' if edited."""
    root = checkout_root()
    if root is None:
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def versions() -> dict[str, str | None]:
    """hpsearch, Python, torch, torchvision and Optuna versions."""
    found: dict[str, str | None] = {"hpsearch": __version__, "python": platform.python_version()}
    for package in ("torch", "torchvision", "optuna"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def data_hash(files: list[Path]) -> str:
    """A content hash of the data files a study reads (once per process while they are unchanged).

    `run` with several workers checks its study twice in one process (before starting the
    worker processes, then as worker 0); the files are read once.
    """
    stamps = tuple((path, path.stat().st_size, path.stat().st_mtime_ns) for path in sorted(files))
    return _content_hash(stamps)


@functools.lru_cache(maxsize=8)
def _content_hash(stamps: tuple[tuple[Path, int, int], ...]) -> str:
    """The hash of the stamped files' names and bytes."""
    digest = hashlib.sha256()
    for path, _, _ in stamps:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:20]


def build(spec: StudySpec, device: str, data: str | None) -> dict[str, Any]:
    """The manifest recorded when a study is created."""
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "git_commit": git_commit(),
        "device": device,
        **_spec_record(spec),
        "study_file_hash": spec.text_hash,
        "data_hash": data,
        **_objective_record(spec),
    }


def _objective_record(spec: StudySpec) -> dict[str, Any]:
    """A user's objective: its entries, a hash of each entry's source, and its config table."""
    if spec.objective is None:
        return {}
    signed = objective_signature(spec)
    return {
        "objective": {
            "entry": spec.objective.entry,
            "entry_source_hash": signed.get("objective.entry.source"),
            "test": spec.objective.test,
            "test_source_hash": signed.get("objective.test.source"),
            "config": dict(spec.objective.config),
        }
    }


def _spec_record(spec: StudySpec) -> dict[str, Any]:
    """What rebuilds the spec the trials ran with: the file, and the run's overrides."""
    return {
        "study_file": spec.text,
        "study_file_path": str(spec.path),
        "seed": spec.seed,  # with --seed and --max-epochs applied, unlike the file's text
        "max_epochs": spec.max_epochs,
    }


def recorded_spec(
    study: optuna.Study, fallback: StudySpec, trial: FrozenTrial | None = None
) -> StudySpec:
    """The spec a trial ran with (by default the latest): the creation file or an allowed change.

    A study resumed with --allow-changed-spec records the changed file with the change, so a
    trial started after it is rebuilt with the model it really trained. `fallback` (the
    current file) serves studies recorded before hpsearch kept the study file.
    """
    attrs = study.user_attrs
    record: dict[str, Any] = attrs.get(_keys.MANIFEST) or {}
    changes = [c for c in attrs.get(_keys.SPEC_CHANGES) or [] if trial is None or _before(c, trial)]
    if changes and not changes[-1].get("study_file"):
        raise StorageError(
            "the study file was changed by an older hpsearch that did not record the new file; "
            "the model of a trial run after that change cannot be rebuilt"
        )
    record = changes[-1] if changes else record
    if not record.get("study_file"):
        return fallback
    spec = parse_spec(record["study_file"], Path(record.get("study_file_path") or fallback.path))
    epochs = record.get("max_epochs") or _signature_epochs(attrs)
    return with_run_settings(spec, record.get("seed"), epochs)


def _before(change: dict[str, Any], trial: FrozenTrial) -> bool:
    """Whether a change was recorded before the trial started (Optuna stores naive local time)."""
    recorded = datetime.fromisoformat(change["time"]).astimezone().replace(tzinfo=None)
    return recorded <= (trial.datetime_start or datetime.max)


def _signature_epochs(attrs: dict[str, Any]) -> int | None:
    """max_epochs from the creation signature, for manifests older than its own record."""
    if attrs.get(_keys.SPEC_CHANGES):
        return None  # the signature follows allowed changes
    value = (attrs.get(_keys.SIGNATURE) or {}).get("training.max_epochs")
    return int(value) if value else None


def check(
    stored: dict[str, Any], spec: StudySpec, data: str | None, allow: bool
) -> dict[str, Any] | None:
    """Compare a resumed study with what it was made with; the change to record, or None."""
    old = stored.get(_keys.SIGNATURE) or {}
    changed = differences(old, signature(spec, old.get(FORMAT_KEY, "1")))
    old_data = stored.get(_keys.DATA_HASH)
    if data and old_data and data != old_data:
        changed.append(f"data files: hash {old_data} -> {data}")
    if not changed:
        return None
    if not allow:
        raise SpecError(
            f"study '{spec.name}' was created with other settings (study file, {arg('seed')}, "
            f"{arg('max_epochs')} or data): "
            f"{'; '.join(changed)}; use a new study name, or pass "
            f"{arg('allow_changed_spec', True)} to resume anyway (the change is recorded on the "
            "study)"
        )
    time = datetime.now(UTC).isoformat(timespec="microseconds")
    return {"time": time, "changes": changed, **_spec_record(spec)}
