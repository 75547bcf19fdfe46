"""What a study was made with: versions, device, study file, seed, data hash, search signature.

Recorded when the study is created; a resumed study whose search space or data differs is
refused unless the change is explicitly allowed, and then the change is recorded too.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
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
    Choice,
    DataSpec,
    ModelSpec,
    PrunerSpec,
    SamplerSpec,
    StudySpec,
    TrainingSpec,
    When,
    parse_spec,
    with_run_settings,
)
from hpsearch.version import __version__

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

# The spec's sections that a signature records, and their settings classes.
SECTIONS: dict[str, type] = {
    "data": DataSpec,
    "model": ModelSpec,
    "training": TrainingSpec,
    "sampler": SamplerSpec,
    "pruner": PrunerSpec,
}


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


# A signature's format, recorded in it: rules for older signatures apply only to signatures that
# really predate a feature. 2: `when` is written wherever a file has it (absent means none).
FORMAT_KEY = "signature_format"
FORMAT = "2"


def signature(spec: StudySpec) -> dict[str, str]:
    """Every setting that shapes the search, as flat 'section.key' -> text (comments ignored)."""
    flat: dict[str, str] = {FORMAT_KEY: FORMAT, "seed": str(spec.seed)}
    for section in SECTIONS:
        flat |= _flatten(section, getattr(spec, section))
    for name, rng in spec.search.items():
        if isinstance(rng, Choice):
            flat[f"search.{name}"] = "choices " + ", ".join(map(str, rng.choices))
        else:
            parts = [f"{rng.low:g}..{rng.high:g}", "log" if rng.log else ""]
            parts += [f"step {rng.step:g}" if rng.step not in (None, 1) else ""]
            flat[f"search.{name}"] = " ".join(p for p in parts if p)
        if rng.when:
            flat[f"search.{name}.when"] = _when_text(rng.when)
    if spec.objective is not None:
        flat |= _objective_signature(spec)
    return flat


def _when_text(when: When) -> str:
    """A `when` as 'batch_norm=False' (alternatives joined with |, conditions with ;)."""
    return "; ".join(f"{name}={'|'.join(map(str, values))}" for name, values in when)


def _objective_signature(spec: StudySpec) -> dict[str, str]:
    """A user's objective: its settings, its config, and the source of its entry files."""
    from hpsearch.objectives._entry import source_hash

    objective = spec.objective
    assert objective is not None
    flat = {
        f"objective.{key}": str(getattr(objective, key))
        for key in ("entry", "metric", "direction", "max_epochs", "test")
    }
    flat |= {f"objective.config.{k}": json.dumps(v) for k, v in objective.config.items()}
    for key in ("entry", "test"):
        entry = getattr(objective, key)
        if entry is not None:
            flat[f"objective.{key}.source"] = source_hash(entry, spec.path.parent) or "(unknown)"
    return flat


# The built-in MLP used dropout only without BatchNorm before study files could say so with
# `when`; a study made then (a signature with no format) had that rule without writing it.
_IMPLICIT_BEFORE_WHEN = {"search.dropout.when": "batch_norm=False"}


def _implicit(old: dict[str, str]) -> dict[str, str]:
    """Rules a signature from before `when` had without recording them (MNIST's dropout)."""
    if FORMAT_KEY in old:
        return {}  # written since `when` existed: an absent `when` means none
    if old.get("data.dataset") == "mnist" and {"search.dropout", "search.batch_norm"} <= old.keys():
        return dict(_IMPLICIT_BEFORE_WHEN)
    return {}


def field_defaults() -> dict[str, str]:
    """Every section setting's default, as in a signature."""
    flat: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        flat |= _flatten(section, cls())
    return flat


def _flatten(section: str, settings: Any) -> dict[str, str]:
    """One section's settings as 'section.key' -> text."""
    return {f"{section}.{k}": str(v) for k, v in dataclasses.asdict(settings).items()}


def differences(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Human lines for every setting that was added, removed or changed.

    A setting that a later hpsearch added reads as its default in older signatures, so a study
    made before it existed resumes unchanged unless the study file sets it otherwise.
    """
    if old:
        old = {**{k: v for k, v in field_defaults().items() if k in new}, **_implicit(old), **old}
    old, new = ({k: v for k, v in s.items() if k != FORMAT_KEY} for s in (old, new))
    lines = []
    for key in sorted(old.keys() | new.keys()):
        before, after = old.get(key, "(absent)"), new.get(key, "(absent)")
        if before != after:
            lines.append(f"{key}: {before} -> {after}")
    return lines


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
    signed = _objective_signature(spec)
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
    changed = differences(stored.get(_keys.SIGNATURE) or {}, signature(spec))
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
