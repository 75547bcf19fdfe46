"""`dataset = "imagefolder"`: any folder of class sub-folders, with the flowers CNN and loader."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from hpsearch.cli import main
from hpsearch.errors import SpecError
from hpsearch.spec import load_spec

Cli = Callable[..., Result]
STUDY = """\
[data]
dataset = "imagefolder"
folder = "shapes"
image_size = 16
valid_fraction = 0.2
test_fraction = 0.2
[model]
channels = [4, 8]
[training]
max_epochs = 2
batch_size = 16
[search]
lr = { low = 1e-3, high = 1e-2, log = true }
[sampler]
kind = "random"
[pruner]
kind = "none"
"""


def shapes(root: Path, per_class: int = 20) -> Path:
    """Three classes of 24x24 PNGs a CNN can tell apart: bright left, right, or top half."""
    rng = np.random.default_rng(0)
    for name, region in (("left", np.s_[:, :12]), ("right", np.s_[:, 12:]), ("top", np.s_[:12])):
        folder = root / "shapes" / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (24, 24, 3), dtype=np.uint8)
            pixels[region] += 150
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.mark.slow
def test_a_generated_three_class_folder_trains_and_reports(
    cli: Cli, make_study: Callable[..., Path], tmp_path: Path, storage_url: str
) -> None:
    """Three classes found by folder name, a stratified split, the CNN, the report's matrix."""
    data = shapes(tmp_path / "data")
    study = make_study(name="shapes", text=STUDY)
    run = ["--study", str(study), "--storage", storage_url, "--data-dir", str(data)]
    result = CliRunner().invoke(main, ["run", *run, "--trials", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="shapes", storage=storage_url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    report = cli("report", *run, "-o", str(tmp_path / "report"))
    assert report.exit_code == 0, report.output
    study = optuna.load_study(study_name="shapes", storage=storage_url)
    record = study.user_attrs[f"test_results:{study.best_trial.number}"]
    assert record["classes"] == ["left", "right", "top"]
    assert sum(map(sum, record["confusion"])) == 12  # a fifth of 60 images held out


def test_imagefolder_needs_its_folder(make_study: Callable[..., Path]) -> None:
    """No default folder: `flowers` is the preset that has one."""
    study = make_study(name="shapes", text=STUDY.replace('folder = "shapes"\n', ""))
    with pytest.raises(SpecError, match=r'data\.folder is required with dataset = "imagefolder"'):
        load_spec(str(study))
