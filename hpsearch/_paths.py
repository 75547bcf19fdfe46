"""Where hpsearch's own files lie, worked out here once instead of by counting parent folders."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The repository root in a source checkout (editable install); site-packages when installed.
SOURCE_ROOT = PACKAGE_DIR.parent


def studies_dir() -> Path:
    """The shipped study files: inside the wheel, or at the root of a source checkout."""
    packaged = PACKAGE_DIR / "studies"
    return packaged if packaged.is_dir() else SOURCE_ROOT / "studies"


def checkout_root() -> Path | None:
    """The git checkout this code runs from, or None when hpsearch was installed from a wheel."""
    return SOURCE_ROOT if (SOURCE_ROOT / ".git").exists() else None
