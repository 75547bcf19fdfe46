"""A study's functions from their entries: a file beside the study file, or an importable module.

The study file's folder goes on `sys.path` first in every process (the run, each worker, a
rerun, the report), so an entry file can import the modules next to it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from hpsearch.errors import SpecError


def load_entry(entry: str, study_dir: Path, key: str, arity: int) -> Callable[..., Any]:
    """The function `entry` names, checked to take `arity` positional arguments.

    Args:
        entry: ``"file.py:function"`` (relative to `study_dir`) or ``"package.module:function"``.
        study_dir: The study file's folder.
        key: The study-file key the entry came from, for messages.
        arity: How many positional arguments the function is called with.
    """
    target, _, name = entry.rpartition(":")
    folder = str(study_dir.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if target.endswith(".py"):
        module = _import_file(study_dir / target, target, key)
    else:
        module = _import_module(target, key)
    function = getattr(module, name, None)
    if function is None:
        found = [n for n, v in vars(module).items() if inspect.isfunction(v) and n[0] != "_"]
        raise SpecError(
            f"{key}: {target} has no function '{name}'; it defines "
            f"{', '.join(found) or 'no functions'}"
        )
    if not callable(function):
        raise SpecError(f"{key}: {target}:{name} is a {type(function).__name__}, not a function")
    _check_arity(function, f"{target}:{name}", key, arity)
    return function  # type: ignore[no-any-return]


def source_hash(entry: str, study_dir: Path) -> str | None:
    """A short hash of the file an entry's function is defined in (None if it is not found)."""
    import hashlib
    import importlib.util

    target = entry.rpartition(":")[0]
    if target.endswith(".py"):
        path: Path | None = study_dir / target
    else:
        try:
            found = importlib.util.find_spec(target)
        except (ImportError, ValueError):
            found = None
        path = Path(found.origin) if found is not None and found.origin else None
    if path is None or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _import_file(path: Path, target: str, key: str) -> ModuleType:
    """Import a .py file as the module named by its stem (so pickling and imports agree)."""
    path = path.resolve()
    if not path.is_file():
        raise SpecError(f"{key}: the file {target} does not exist (looked for {path})")
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpecError(f"{key}: importing {target} failed: {_one_line(exc)}") from None
    return module


def _import_module(target: str, key: str) -> ModuleType:
    """Import a module by its dotted name."""
    try:
        return importlib.import_module(target)
    except Exception as exc:
        raise SpecError(f"{key}: importing module {target} failed: {_one_line(exc)}") from None


def _check_arity(function: Callable[..., Any], where: str, key: str, arity: int) -> None:
    """The function must accept `arity` positional arguments, e.g. (params, ctx)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # a builtin without a signature: trust it
    try:
        signature.bind(*range(arity))
    except TypeError:
        wanted = "(params, ctx)" if arity == 2 else "(params, ctx, weights)"
        raise SpecError(
            f"{key}: {where}{signature} cannot be called as {where.split(':')[1]}{wanted}; "
            f"give it {arity} positional parameters"
        ) from None


def _one_line(exc: BaseException) -> str:
    """An exception as 'Type: first line of its message'."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
