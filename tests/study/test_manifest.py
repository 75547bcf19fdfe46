"""The manifest: what a study was made with, and refusing a resume whose space or data changed."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner, Result

from hpsearch import _keys
from hpsearch.cli import main
from hpsearch.spec import FORMAT, FORMAT_KEY, load_spec, signature
from hpsearch.study import _manifest as manifest

pytestmark = pytest.mark.slow  # every test runs a study
Cli = Callable[..., Result]


def stored(url: str) -> optuna.Study:
    """The tiny study as stored."""
    return optuna.load_study(study_name="tiny", storage=url)


def test_creation_records_the_manifest(
    cli: Cli, make_study: Callable[..., Path], storage_url: str, mnist_dir: Path
) -> None:
    path = make_study()
    assert (
        cli("run", "--study", str(path), "--trials", "1", "--storage", storage_url).exit_code == 0
    )
    attrs = stored(storage_url).user_attrs
    record = attrs["manifest"]
    assert record["study_file"] == path.read_text()
    assert record["seed"] == 3 and record["device"] == "cpu"
    assert set(record["versions"]) == {"hpsearch", "python", "torch", "torchvision", "optuna"}
    assert record["versions"]["torch"].startswith("2.")
    raw = mnist_dir / "MNIST" / "raw"
    expected = manifest.data_hash(
        [raw / "train-images-idx3-ubyte", raw / "train-labels-idx1-ubyte"]
    )
    assert record["data_hash"] == expected == attrs["data_hash"]
    assert attrs["signature"]["search.lr"] == "0.0003..0.003 log"
    assert record["git_commit"] is None or len(record["git_commit"].split("+")[0]) == 40


def test_changed_range_is_refused_then_allowed_and_recorded(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    path = make_study()
    assert (
        cli("run", "--study", str(path), "--trials", "2", "--storage", storage_url).exit_code == 0
    )
    before = [(t.number, t.state, t.value) for t in stored(storage_url).trials]
    path.write_text(path.read_text().replace("high = 3e-3", "high = 1e-2"))
    refused = cli("run", "--study", str(path), "--trials", "3", "--storage", storage_url)
    assert refused.exit_code == 1
    assert "search.lr: 0.0003..0.003 log -> 0.0003..0.01 log" in refused.output
    assert (
        "--allow-changed-spec" in refused.output and len(refused.output.strip().splitlines()) == 1
    )
    assert [(t.number, t.state, t.value) for t in stored(storage_url).trials] == before
    allowed = cli(
        "run",
        "--study",
        str(path),
        "--trials",
        "3",
        "--storage",
        storage_url,
        "--allow-changed-spec",
    )
    assert allowed.exit_code == 0, allowed.output
    attrs = stored(storage_url).user_attrs
    assert attrs["spec_changes"][0]["changes"] == [
        "search.lr: 0.0003..0.003 log -> 0.0003..0.01 log"
    ]
    assert len(stored(storage_url).trials) == 3
    again = cli("run", "--study", str(path), "--trials", "3", "--storage", storage_url)
    assert again.exit_code == 0  # the accepted space is now the study's own


def test_comment_edits_are_not_changes(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    path = make_study()
    assert (
        cli("run", "--study", str(path), "--trials", "1", "--storage", storage_url).exit_code == 0
    )
    path.write_text("# a note\n" + path.read_text().replace('"tiny test study"', '"renamed"'))
    result = cli("run", "--study", str(path), "--trials", "2", "--storage", storage_url)
    assert result.exit_code == 0, result.output


def test_a_setting_added_later_reads_as_its_default_in_an_older_study(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    path = make_study()
    assert (
        cli("run", "--study", str(path), "--trials", "1", "--storage", storage_url).exit_code == 0
    )
    study = stored(storage_url)
    older = signature(load_spec(path), "1")  # as an hpsearch before signature formats wrote it
    del older["training.schedule"]  # and before training.schedule existed
    study.set_user_attr(_keys.SIGNATURE, older)
    resumed = cli("run", "--study", str(path), "--trials", "2", "--storage", storage_url)
    assert resumed.exit_code == 0, resumed.output
    study.set_user_attr(_keys.SIGNATURE, older)
    path.write_text(path.read_text().replace("[training]", '[training]\nschedule = "cosine"'))
    changed = cli("run", "--study", str(path), "--trials", "3", "--storage", storage_url)
    assert changed.exit_code == 1
    assert "training.schedule: constant -> cosine" in changed.output


def test_an_mnist_study_from_before_when_resumes_with_the_when_in_its_file(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    """MNIST's dropout was conditional on BatchNorm before files could say so; not a change."""
    path = make_study()  # its dropout has when = { batch_norm = false }, as mnist-reg now does
    assert (
        cli("run", "--study", str(path), "--trials", "1", "--storage", storage_url).exit_code == 0
    )
    study = stored(storage_url)
    older = signature(load_spec(path), "1")  # as recorded before signatures had a format
    del older["search.dropout.when"]  # and before `when` existed
    study.set_user_attr(_keys.SIGNATURE, older)
    resumed = cli("run", "--study", str(path), "--trials", "2", "--storage", storage_url)
    assert resumed.exit_code == 0, resumed.output
    study.set_user_attr(_keys.SIGNATURE, older)
    text = path.read_text().replace("batch_norm = false }", "batch_norm = true }")
    path.write_text(text)
    changed = cli("run", "--study", str(path), "--trials", "3", "--storage", storage_url)
    assert changed.exit_code == 1
    assert "search.dropout.when: batch_norm=False -> batch_norm=True" in changed.output


def test_a_study_signed_in_an_older_format_resumes_and_still_sees_changes(
    cli: Cli, make_study: Callable[..., Path], storage_url: str
) -> None:
    """Format 2 rounded ranges to 6 digits and wrote choices with str(); such a study resumes
    with its unchanged file, and a real change is still refused, in format 2's words."""
    path = make_study()
    path.write_text(path.read_text().replace("low = 3e-4", "low = 0.000312345678"))
    assert (
        cli("run", "--study", str(path), "--trials", "1", "--storage", storage_url).exit_code == 0
    )
    study = stored(storage_url)
    assert study.user_attrs[_keys.SIGNATURE][FORMAT_KEY] == FORMAT
    older = signature(load_spec(path), "2")
    assert older["search.lr"] == "0.000312346..0.003 log"
    assert older["search.batch_norm"] == "choices True, False"
    study.set_user_attr(_keys.SIGNATURE, older)
    resumed = cli("run", "--study", str(path), "--trials", "2", "--storage", storage_url)
    assert resumed.exit_code == 0, resumed.output
    path.write_text(path.read_text().replace("high = 3e-3", "high = 4e-3"))
    changed = cli("run", "--study", str(path), "--trials", "3", "--storage", storage_url)
    assert changed.exit_code == 1
    assert "search.lr: 0.000312346..0.003 log -> 0.000312346..0.004 log" in changed.output


@pytest.mark.parametrize("storage_kind", ["sqlite", "postgres"])
def test_a_user_file_without_when_runs_resumes_and_joins(
    make_study: Callable[..., Path], tmp_path: Path, storage_kind: str, mnist_dir: Path
) -> None:
    """Dropout in every trial beside batch_norm (no `when`): a study of today has no hidden rule.

    With the default workers, then a resume to a larger total, then a joining worker; a
    signature from before `when` existed still gets MNIST's old implicit rule.
    """
    from processes import hpsearch, postgres_url

    url = f"sqlite:///{tmp_path / 'trials.db'}" if storage_kind == "sqlite" else postgres_url()
    if url is None:
        pytest.skip("HPSEARCH_TEST_POSTGRES is not set")
    text = make_study().read_text().replace(", when = { batch_norm = false }", "")
    path = make_study(name=f"nowhen{uuid.uuid4().hex[:8]}", text=text)
    data = ["--data-dir", str(mnist_dir), "--device", "cpu", "--no-progress", "--max-epochs", "1"]
    steps = [["run", "--trials", "2"], ["run", "--trials", "3", "--workers", "1"]]
    steps += [["worker", "--trials", "4"]]
    for step in steps:
        proc = hpsearch(step[0], "--study", str(path), *step[1:], *data, url=url)
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        assert "other settings" not in out and "Traceback" not in out, out
    trials = optuna.load_study(study_name=path.stem, storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert {t.params["batch_norm"] for t in trials if "dropout" in t.params} <= {True, False}
    assert all("dropout" in t.params for t in trials)


def test_changed_data_is_refused(
    make_study: Callable[..., Path], storage_url: str, mnist_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(mnist_dir / "MNIST", data / "MNIST")
    path = make_study()
    args = [
        "run",
        "--study",
        str(path),
        "--trials",
        "1",
        "--storage",
        storage_url,
        "--data-dir",
        str(data),
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert CliRunner().invoke(main, args).exit_code == 0
    images = data / "MNIST" / "raw" / "train-images-idx3-ubyte"
    blob = bytearray(images.read_bytes())
    blob[-1] ^= 0xFF
    images.write_bytes(bytes(blob))
    args[4] = "2"
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "data files: hash" in result.output
