"""What `objective.test` returns, checked where it enters: only a valid result is ever recorded.

The shapes: numbers by name (``{"accuracy": 0.98}``), and optionally ``classes`` (names),
``per_class`` (a number per class: a list in the order of ``classes``, or a dict keyed by class)
and ``confusion`` (a square matrix of counts, rows true and columns predicted).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hpsearch.errors import HPSearchError, short
from hpsearch.objectives._context import as_number

EXTRAS = ("per_class", "confusion", "classes")


class ResultError(HPSearchError):
    """A test function returned something hpsearch cannot record (or a stored result is bad)."""


def checked(returned: Any, where: str = "objective.test") -> dict[str, Any]:
    """The returned value as a record's fields: metrics, per_class, confusion and classes."""
    if not isinstance(returned, Mapping):
        raise ResultError(
            f"{where} returned {short(returned)} ({type(returned).__name__}); it must return a "
            "dict of numbers, e.g. {'accuracy': 0.98}"
        )
    values = dict(returned)
    extras = {key: values.pop(key) for key in EXTRAS if key in values}
    metrics = {str(key): _number(f"{where} returned {key}", value) for key, value in values.items()}
    if not metrics:
        raise ResultError(f"{where} returned no numbers; return e.g. {{'accuracy': 0.98}}")
    confusion = _confusion(extras.get("confusion"), where)
    classes = _classes(extras.get("classes"), where)
    per_class = extras.get("per_class")
    if isinstance(per_class, Mapping):
        classes = classes or [str(key) for key in per_class]
        per_class = _per_class_from_dict(per_class, classes, where)
    elif per_class is not None:
        per_class = _per_class_list(per_class, where)
    size = len(per_class or confusion)
    if not classes and size:
        classes = [str(i) for i in range(size)]  # unnamed classes: their indices
    for key, items in (("per_class", per_class), ("confusion", confusion)):
        if items and len(items) != len(classes):
            raise ResultError(
                f"{where} returned {key} for {len(items)} classes but classes names "
                f"{len(classes)}; give one entry per class, in the order of classes"
            )
    return {
        "metrics": metrics,
        "per_class": per_class or [],
        "confusion": confusion,
        "classes": classes,
    }


def _number(where: str, value: Any) -> float:
    """A finite number (a Python or numpy number, or a one-element tensor)."""
    number = as_number(value)
    if number is None:
        raise ResultError(f"{where} = {short(value)}; it must be a number, e.g. 0.98")
    if not math.isfinite(number):
        raise ResultError(f"{where} = {number}; it must be a finite number")
    return number


def _listed(value: Any, what: str, where: str) -> list[Any]:
    """A list, tuple or array (its tolist()) as a list, else a clear error."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        value = tolist()
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ResultError(f"{where} returned {what} = {short(value)}; it must be a list")
    return list(value)


def _classes(value: Any, where: str) -> list[str]:
    """Class names as strings (numbers are written as they print)."""
    if value is None:
        return []
    names = [str(name) for name in _listed(value, "classes", where)]
    if len(set(names)) < len(names):
        raise ResultError(f"{where} returned classes with a name twice: {short(names)}")
    return names


def _per_class_list(value: Any, where: str) -> list[float]:
    """A number per class, in the order of classes."""
    items = _listed(value, "per_class", where)
    return [_number(f"{where} returned per_class[{i}]", v) for i, v in enumerate(items)]


def _per_class_from_dict(value: Mapping[Any, Any], classes: list[str], where: str) -> list[float]:
    """A dict keyed by class (names or indices) as a list in the order of classes."""
    by_name = {str(key): v for key, v in value.items()}
    if set(by_name) != set(classes):
        raise ResultError(
            f"{where} returned per_class keyed by {short(sorted(by_name))} but classes are "
            f"{short(classes)}; key per_class by the class names"
        )
    return [_number(f"{where} returned per_class[{name!r}]", by_name[name]) for name in classes]


def _confusion(value: Any, where: str) -> list[list[int]]:
    """A square matrix of non-negative counts."""
    if value is None:
        return []
    rows = [_listed(row, "a confusion row", where) for row in _listed(value, "confusion", where)]
    if any(len(row) != len(rows) for row in rows):
        raise ResultError(
            f"{where} returned a confusion matrix that is not square ({len(rows)} rows of "
            f"{sorted({len(row) for row in rows})} columns); rows are true, columns predicted"
        )
    matrix = []
    for i, row in enumerate(rows):
        counts = [_number(f"{where} returned confusion[{i}][{j}]", v) for j, v in enumerate(row)]
        if any(c < 0 or c != int(c) for c in counts):
            raise ResultError(
                f"{where} returned confusion row {i} = {short(row)}; it must hold counts "
                "(whole numbers ≥ 0)"
            )
        matrix.append([int(c) for c in counts])
    return matrix
