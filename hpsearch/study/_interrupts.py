"""Ctrl-C during a study: the first one stops it, even when Python drops the exception it raised.

SIGTERM, which `run` sends to stop the worker processes it started, is handled the same way
while trials can run; before that (a worker still starting up) it ends the process quietly,
since it holds no trial yet.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_requested = threading.Event()
SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_once() -> Any:
    """First Ctrl-C raises KeyboardInterrupt; later ones are ignored so the cleanup completes.

    (A terminal sends SIGINT to every worker and `run --workers` sends SIGTERM.) Returns the
    previous handlers, or None where handlers cannot be set (not the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    _requested.clear()

    def handler(signum: int, frame: Any) -> None:
        _requested.set()
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    return [signal.signal(sig, handler) for sig in SIGNALS]


def restore(previous: Any) -> None:
    """Put back the handlers install_once replaced and forget any request."""
    _requested.clear()
    if previous is not None:
        for sig, handler in zip(SIGNALS, previous, strict=True):
            signal.signal(sig, handler)


def requested() -> bool:
    """Whether Ctrl-C was pressed since install_once."""
    return _requested.is_set()


def raise_if_requested() -> None:
    """Raise again a Ctrl-C whose exception landed in a finalizer, where Python only prints it.

    Later Ctrl-Cs are ignored, so without this the run would go on to the end.
    """
    if requested():
        raise KeyboardInterrupt
