"""Best-epoch weights as Optuna artifacts: a bounded kept set, and weights that reproduce."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import torch
from click.testing import Result

from hpsearch import _keys
from hpsearch.errors import StorageError
from hpsearch.objectives._builtin import classifier_for, hyperparameters
from hpsearch.objectives._train import evaluate
from hpsearch.spec import load_spec
from hpsearch.storages._artifacts import keep_set, load_weights, open_store

pytestmark = pytest.mark.slow  # every test runs a study
Cli = Callable[..., Result]


def test_only_the_kept_set_stays_and_the_best_weights_reproduce(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path, mnist_dir: Path
) -> None:
    path = make_study()
    path.write_text("keep_weights = 2\n" + path.read_text())
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    result = cli("run", "--study", str(path), "--trials", "8", "--storage", url)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "trials-artifacts"  # the default: beside the SQLite file
    study = optuna.load_study(study_name="tiny", storage=url)
    trials = study.trials
    assert all(_keys.WEIGHTS_ARTIFACT in t.user_attrs for t in trials)
    keep = keep_set(trials, maximize=True, top_k=2)
    assert len(keep) < len(trials)
    on_disk = {p.name for p in folder.iterdir()}
    assert on_disk == {trials[n].user_attrs[_keys.WEIGHTS_ARTIFACT] for n in keep}
    for value in (True, False):  # the best trial of each BatchNorm setting keeps its weights
        group = [t for t in trials if t.params["batch_norm"] is value]
        if group:
            assert max(group, key=lambda t: t.value or 0).number in keep

    best = study.best_trial
    spec = load_spec(str(path))
    kind = classifier_for(spec)
    model = kind.build(spec, hyperparameters(spec, best.params), 10)
    model.load_state_dict(load_weights(open_store(folder), best))
    splits = kind.load(spec.data, mnist_dir, torch.device("cpu"))
    _, accuracy = evaluate(model, splits.x_valid, splits.y_valid)
    assert accuracy == best.value


@pytest.fixture
def one_trial(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path
) -> tuple[Path, optuna.trial.FrozenTrial]:
    """The artifact folder and the one completed trial of a tiny study."""
    url = f"sqlite:///{tmp_path / 'trials.db'}"
    assert (
        cli("run", "--study", str(make_study()), "--trials", "1", "--storage", url).exit_code == 0
    )
    return tmp_path / "trials-artifacts", optuna.load_study(study_name="tiny", storage=url).trials[
        0
    ]


def test_missing_artifact_is_a_clear_error(
    one_trial: tuple[Path, optuna.trial.FrozenTrial],
) -> None:
    folder, trial = one_trial
    (folder / trial.user_attrs[_keys.WEIGHTS_ARTIFACT]).unlink()
    missing = r"weights of trial #0 .* are not in the artifact folder; .*artifacts=DIR"
    with pytest.raises(StorageError, match=missing):
        load_weights(open_store(folder), trial)


def test_weights_a_gpu_worker_saved_load_on_a_cpu_only_machine(
    one_trial: tuple[Path, optuna.trial.FrozenTrial], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch.serialization

    folder, trial = one_trial
    file = folder / trial.user_attrs[_keys.WEIGHTS_ARTIFACT]
    state = torch.load(file, weights_only=True)
    # No GPU here: write the file as a CUDA state_dict is written, with every tensor tagged
    # cuda:1 (what an older hpsearch stored from a worker on the second GPU).
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:1")
    torch.save(state, file)
    monkeypatch.undo()
    loaded = load_weights(open_store(folder), trial)
    assert all(v.device.type == "cpu" for v in loaded.values())
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_artifacts_folder_from_the_option(
    cli: Cli, make_study: Callable[..., Path], storage_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "weights"
    result = cli(
        "run",
        "--study",
        str(make_study()),
        "--trials",
        "1",
        "--storage",
        storage_url,
        "--artifacts",
        str(folder),
    )
    assert result.exit_code == 0, result.output
    assert len(list(folder.iterdir())) == 1


def test_pruning_spares_the_weights_of_a_trial_still_running(tmp_path: Path) -> None:
    """Another worker's running trial may finish best: its weights must not be pruned away."""
    from torch import nn

    from hpsearch.storages._artifacts import open_store, prune_store, upload_weights

    store = open_store(tmp_path / "artifacts")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 't.db'}", direction="maximize")
    running = study.ask()
    upload_weights(store, running, nn.Linear(2, 2))
    ids = {}
    for value in (0.1, 0.2, 0.3):
        trial = study.ask()
        ids[value] = upload_weights(store, trial, nn.Linear(2, 2))
        study.tell(trial, value)
    removed = prune_store(store, study, top_k=1)
    assert removed == [ids[0.1], ids[0.2]]  # finished and outside the top 1
    kept = {p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file()}
    assert len(kept) == 2  # the best finished trial's, and the running trial's
