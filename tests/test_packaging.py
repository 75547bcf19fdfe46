"""The wheel: installed (not editable) into a fresh venv, it carries the study files and runs."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from repo import REPO

pytestmark = pytest.mark.slow
PIP = [sys.executable, "-m", "pip"]


def _build_wheel(out: Path) -> Path:
    """`pip wheel .` with the hatchling of this environment (nothing downloaded)."""
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("hpsearch-*.whl"))


def _fresh_venv(root: Path, wheel: Path) -> Path:
    """A venv holding only the wheel; its dependencies come from this environment's site."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # A plain path line: the editable hpsearch's own .pth in that folder is not processed.
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [*PIP, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    return root / "bin"


def test_the_wheel_carries_the_study_files_and_runs_from_any_directory(
    tmp_path: Path, full_data_dir: Path
) -> None:
    """`pip install .` then `hpsearch studies` and `hpsearch run --study mnist-reg` elsewhere."""
    wheel = _build_wheel(tmp_path / "dist")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hpsearch/studies/mnist-reg.toml" in names and "hpsearch/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "src/"))]
    bin_dir = _fresh_venv(tmp_path / "venv", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def hpsearch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "hpsearch"), *args], cwd=elsewhere, capture_output=True, text=True
        )

    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import hpsearch; print(hpsearch.__file__)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert str(tmp_path / "venv") in where.stdout, where.stdout + where.stderr  # not the checkout
    listed = hpsearch("studies")
    assert listed.returncode == 0, listed.stderr
    assert {"mnist-reg", "mnist-narrow", "flowers-reg"} <= {
        line.split()[0] for line in listed.stdout.splitlines()
    }
    ran = hpsearch(
        "run", "--study", "mnist-reg", "--trials", "1", "--max-epochs", "1", "--no-progress",
        "--data-dir", str(full_data_dir), "--device", "cpu", "--storage", "sqlite:///t.db",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "study mnist-reg: 1/1 trials finished" in ran.stdout
    assert (elsewhere / "t.db").is_file() and (elsewhere / "t-artifacts").is_dir()
