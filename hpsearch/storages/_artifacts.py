"""Best-epoch weights as Optuna artifacts, with disk kept bounded.

Each completed trial uploads the weights of its restored best epoch to an Optuna artifact store
(a FileSystemArtifactStore: by default a folder beside the SQLite file) and records the id as
the user attribute `weights_artifact`. After every trial the store keeps only the top-k trials
by value plus the best trial for each value of every categorical parameter; the others' files
are removed. Two workers pruning at once may each keep a file the other would have removed, so
a race leaves extra files, never fewer than needed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch import _keys
from hpsearch.errors import StorageError, arg
from hpsearch.samplers._ranking import completed_best_first

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore
    from optuna.trial import FrozenTrial
    from torch import nn

DEFAULT_KEEP = 5


def default_dir(storage_url: str) -> Path:
    """`<db>-artifacts` beside a SQLite file; ./hpsearch-artifacts for a server database."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(storage_url)
    except Exception:
        return Path("hpsearch-artifacts")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        db = Path(str(url.database))
        return db.with_name(f"{db.stem}-artifacts")
    return Path("hpsearch-artifacts")


def store_for(directory: Path) -> ArtifactStore:
    """The store for `directory` without touching the disk: for readers, and checks before a run."""
    from optuna.artifacts import FileSystemArtifactStore

    return FileSystemArtifactStore(base_path=directory)


def check_writable(directory: Path) -> None:
    """The artifact folder is writable, or can be created: checked before anything is stored."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = f"pass {arg('artifacts', 'DIR')} with a folder you can write to"
    if not existing.is_dir():
        why = "is a file" if existing == directory else f"cannot be created: {existing} is a file"
        raise StorageError(f"the artifact folder {directory} {why}; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == directory else f" (in {existing})"
        raise StorageError(f"cannot write to the artifact folder {directory}{where}; {fix}")


def open_store(directory: Path) -> ArtifactStore:
    """A filesystem artifact store in `directory`, created if needed, for a run that writes."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the artifact folder {directory}: {exc.strerror}; pass "
            f"{arg('artifacts', 'DIR')}"
        ) from None
    return store_for(directory)


def upload_weights(
    store: ArtifactStore, trial: optuna.Trial, weights: nn.Module | Mapping[str, torch.Tensor]
) -> str:
    """Save a model's (or a state_dict's) tensors as this trial's artifact and record its id.

    A second save in the same trial replaces the first, so each trial keeps one file.
    """
    import torch
    from optuna.artifacts import upload_artifact
    from optuna.artifacts.exceptions import ArtifactNotFound

    state = weights.state_dict() if isinstance(weights, torch.nn.Module) else weights
    tag = f"{socket.gethostname()}-{os.getpid()}-{trial.number}"
    with tempfile.TemporaryDirectory(prefix=f"hpsearch-{tag}-") as tmp:
        path = Path(tmp) / f"trial-{trial.number}-weights.pt"
        # CPU tensors: a GPU worker's weights must load where the report runs, maybe no GPU
        torch.save({k: v.detach().cpu() for k, v in state.items()}, path)
        artifact_id = upload_artifact(
            artifact_store=store,
            file_path=str(path),
            study_or_trial=trial,
            mimetype="application/x-pytorch",
        )
    earlier = trial.user_attrs.get(_keys.WEIGHTS_ARTIFACT)
    trial.set_user_attr(_keys.WEIGHTS_ARTIFACT, artifact_id)
    if earlier:
        with contextlib.suppress(ArtifactNotFound):
            store.remove(earlier)
    return artifact_id


def keep_set(trials: list[FrozenTrial], maximize: bool, top_k: int) -> set[int]:
    """Trial numbers whose weights stay: the top k, and the best per categorical value."""
    done = completed_best_first(trials, maximize)
    keep = {t.number for t in done[:top_k]}
    best_per_value: dict[tuple[str, Any], int] = {}
    for trial in done:  # best first, so the first seen per (param, value) is its best
        for name, value in trial.params.items():
            if isinstance(value, bool | str) or name == "batch_size":
                best_per_value.setdefault((name, value), trial.number)
    return keep | set(best_per_value.values())


def prune_store(store: ArtifactStore, study: optuna.Study, top_k: int) -> list[str]:
    """Remove the weights of finished trials outside the keep set; returns the removed ids.

    A trial still running (another worker's) keeps its weights: it may finish best.
    """
    from optuna.artifacts.exceptions import ArtifactNotFound

    trials = study.get_trials(deepcopy=False)
    keep = keep_set(trials, study.direction.name == "MAXIMIZE", top_k)
    removed = []
    for trial in trials:
        artifact_id = trial.user_attrs.get(_keys.WEIGHTS_ARTIFACT)
        if artifact_id and trial.state.is_finished() and trial.number not in keep:
            try:
                store.remove(artifact_id)
                removed.append(artifact_id)
            except ArtifactNotFound:
                pass  # already removed, by this worker or another
    return removed


class NoWeights(StorageError):
    """A trial that never kept weights (unlike weights kept but missing from the folder)."""


def _why_none(trial: FrozenTrial) -> str:
    """Why a trial kept no weights: it did not finish, or its objective never saved any."""
    from optuna.trial import TrialState

    if trial.state != TrialState.COMPLETE:
        return f"it is {trial.state.name}, not COMPLETE"
    return (
        "its objective did not call ctx.save_weights(model), so objective.test cannot evaluate "
        "it; trials run once the objective saves its weights can be tested"
    )


def load_weights(store: ArtifactStore, trial: FrozenTrial) -> dict[str, Any]:
    """A trial's stored state_dict, or a clear error when it was not kept or was deleted."""
    import torch
    from optuna.artifacts.exceptions import ArtifactNotFound

    artifact_id = trial.user_attrs.get(_keys.WEIGHTS_ARTIFACT)
    if not artifact_id:
        raise NoWeights(f"trial #{trial.number} has no stored weights ({_why_none(trial)})")
    try:
        with store.open_reader(artifact_id) as reader:
            # map_location: files written by older versions hold tensors tagged cuda:N
            state: dict[str, Any] = torch.load(reader, map_location="cpu", weights_only=True)
    except (ArtifactNotFound, FileNotFoundError):
        raise StorageError(
            f"the weights of trial #{trial.number} (artifact {artifact_id}) are not in the "
            f"artifact folder; if the run kept them elsewhere, pass {arg('artifacts', 'DIR')} "
            "(a run keeps only its top trials' weights; a deleted file cannot be recovered)"
        ) from None
    return state
