"""Fixtures for the tests of a user's own objective."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from toy_study import write_toy


@pytest.fixture
def toy(tmp_path: Path) -> Callable[..., Path]:
    """Write toy.py and a study file naming it into a fresh folder; returns the study file."""

    def write(**kwargs: object) -> Path:
        return write_toy(tmp_path / "project", **kwargs)  # type: ignore[arg-type]

    return write
