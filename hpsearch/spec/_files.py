"""Finding and reading study files: a shipped name or a path, as UTF-8 TOML."""

from __future__ import annotations

from pathlib import Path

from hpsearch._paths import studies_dir
from hpsearch.errors import SpecError
from hpsearch.spec._parse import parse_spec
from hpsearch.spec._types import StudySpec


def list_study_files() -> list[Path]:
    """Every shipped study file, sorted by name: in studies/, or in an example's own folder."""
    root = studies_dir()
    return sorted([*root.glob("*.toml"), *root.glob("*/*.toml")], key=lambda p: p.stem)


def resolve_study(name_or_path: str) -> Path:
    """A study name from studies/, or a path to a .toml file, to an existing file."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix == ".toml" or "/" in name_or_path:
        if candidate.is_file():
            return candidate
        if candidate.is_dir():
            raise SpecError(f"study file '{name_or_path}' is a folder; pass the .toml file in it")
        raise SpecError(f"study file '{name_or_path}' does not exist; check the path")
    shipped = [p for p in list_study_files() if p.stem == name_or_path]
    if shipped:
        return shipped[0]
    known = ", ".join(p.stem for p in list_study_files()) or "(none)"
    raise SpecError(
        f"unknown study '{name_or_path}'; known studies: {known} (or pass a path to a .toml file)"
    )


def load_spec(name_or_path: str) -> StudySpec:
    """Read, parse and validate a study file named by study name or path.

    Unknown keys, wrong types and out-of-range values raise `SpecError` with the file and the
    key named, e.g. ``search.dropout.high must be < 1 but got 1.5``.

    Args:
        name_or_path: A shipped study's name (see `hpsearch studies`), or a path to a ``.toml``
            study file.

    Returns:
        The frozen spec: data, model, training settings, search ranges, sampler and pruner.

    Example:
        >>> import hpsearch
        >>> spec = hpsearch.load_spec("mnist-narrow")
        >>> spec.sampler.kind, sorted(spec.search)[:2]
        ('narrowing', ['batch_norm', 'batch_size'])
    """
    spec = read_spec(name_or_path)
    if spec.objective is not None:
        from hpsearch.objectives._factory import check_entries

        check_entries(spec)  # a bad entry fails now, before anything is created
    return spec


def read_spec(name_or_path: str) -> StudySpec:
    """Read, parse and validate a study file, without importing its objective's code."""
    path = resolve_study(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8 TOML"
        ) from None
    except OSError as exc:
        raise SpecError(
            f"{path}: cannot read the study file ({exc.strerror}); check its permissions"
        ) from None
    return parse_spec(text, path)
