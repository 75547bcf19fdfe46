"""Errors the library raises; the CLI turns each into one line and a non-zero exit.

A message names the argument to fix with `arg("max_epochs")`: Python callers read
`max_epochs`, users of the command line read `--max-epochs`.
"""

from __future__ import annotations

import re
from typing import Any

INTERRUPTED_EXIT = 130  # the exit status after Ctrl-C, of `run` and of each worker it starts

_MARK = "\x00"
_ARG = re.compile(f"{_MARK}(\\w+)(?:=([^{_MARK}]*))?{_MARK}")


def arg(name: str, example: object = None) -> str:
    """Mark argument `name` (with an example value) in a message, for either audience.

    Args:
        name: The Python argument name, e.g. ``"max_epochs"``.
        example: A value to show with it: ``True`` for a flag, e.g. ``allow_changed_spec``.

    Example:
        >>> str(UsageError(f"{arg('trials')} must be ≥ 1"))
        'trials must be ≥ 1'
    """
    return f"{_MARK}{name}{_MARK}" if example is None else f"{_MARK}{name}={example}{_MARK}"


def _as_python(match: re.Match[str]) -> str:
    """`trials`, `trials=200`, `allow_changed_spec=True`."""
    name, example = match.group(1), match.group(2)
    return name if example is None else f"{name}={example}"


def _as_option(match: re.Match[str]) -> str:
    """`--trials`, `--trials 200`, `--allow-changed-spec`."""
    name, example = "--" + match.group(1).replace("_", "-"), match.group(2)
    if example is None or example == "True":
        return name
    return f"{name} {example}"


class HPSearchError(Exception):
    """Base of every error a user can fix; its message names the problem and the fix.

    Example:
        >>> try:
        ...     hpsearch.load_spec("no-such-study")
        ... except hpsearch.HPSearchError as exc:
        ...     print(exc)
    """

    def __str__(self) -> str:
        """The message with argument names as Python callers write them."""
        return _ARG.sub(_as_python, super().__str__())

    def for_command_line(self) -> str:
        """The message with argument names as command-line options."""
        return _ARG.sub(_as_option, super().__str__())


class SpecError(HPSearchError):
    """A study file is missing, malformed or out of range.

    Example:
        >>> hpsearch.load_spec("studies/typo.toml")  # [serach] instead of [search]
        Traceback (most recent call last):
        hpsearch.errors.SpecError: studies/typo.toml: unknown key 'serach'; known keys here: ...
    """


class StorageError(HPSearchError):
    """The storage URL is bad, the database is unreachable, or the stored study conflicts.

    Example:
        >>> hpsearch.join("mnist-narrow", storage="sqlite:///empty.db")
        Traceback (most recent call last):
        hpsearch.errors.StorageError: no study 'mnist-narrow' in sqlite:///empty.db; create ...
    """


class DataError(HPSearchError):
    """The data set is missing, unreadable or too small for the requested split.

    Example:
        >>> hpsearch.run("mnist-reg", trials=10, data_dir="/nowhere")  # HPSEARCH_OFFLINE=1
        Traceback (most recent call last):
        hpsearch.errors.DataError: MNIST not found in /nowhere/MNIST/raw and ...
    """


class UsageError(HPSearchError):
    """An argument's value is out of range or conflicts with another argument.

    Example:
        >>> hpsearch.run("mnist-reg", trials=0)
        Traceback (most recent call last):
        hpsearch.errors.UsageError: trials must be ≥ 1 but got 0; give the study's total, ...
    """


def short(value: Any) -> str:
    """A value as a message shows it: its repr on one line, cut short."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
