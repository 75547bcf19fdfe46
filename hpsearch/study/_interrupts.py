"""Ctrl-C during a study: the first one stops it, even when Python drops the exception it raised."""

from __future__ import annotations

import signal
import threading
from typing import Any

_requested = threading.Event()


def install_once() -> Any:
    """First Ctrl-C raises KeyboardInterrupt; later ones are ignored so the cleanup completes.

    (A terminal sends SIGINT to every worker and `run --workers` forwards one more.) Returns
    the previous handler, or None where handlers cannot be set (not the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    _requested.clear()

    def handler(signum: int, frame: Any) -> None:
        _requested.set()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    return signal.signal(signal.SIGINT, handler)


def restore(previous: Any) -> None:
    """Put back the handler install_once replaced and forget any request."""
    _requested.clear()
    if previous is not None:
        signal.signal(signal.SIGINT, previous)


def requested() -> bool:
    """Whether Ctrl-C was pressed since install_once."""
    return _requested.is_set()


def raise_if_requested() -> None:
    """Raise again a Ctrl-C whose exception landed in a finalizer, where Python only prints it.

    Later Ctrl-Cs are ignored, so without this the run would go on to the end.
    """
    if requested():
        raise KeyboardInterrupt
