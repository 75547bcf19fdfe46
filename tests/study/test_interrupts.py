"""Ctrl-C handling: a KeyboardInterrupt that Python drops in a finalizer is not lost."""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
from typing import Any

import pytest

from hpsearch.study import _interrupts as interrupts


class SignalsOnCleanup:
    """Sends this process SIGINT from __del__, where Python prints an exception and drops it."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, inside the finalizer


def test_a_ctrl_c_dropped_in_a_finalizer_is_raised_again(monkeypatch: pytest.MonkeyPatch) -> None:
    dropped: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)
    previous = interrupts.install_once()
    try:
        interrupts.raise_if_requested()  # nothing requested yet: no error
        victim = SignalsOnCleanup()
        del victim
        gc.collect()
        assert [d.exc_type for d in dropped] == [KeyboardInterrupt]  # Python dropped it
        os.kill(os.getpid(), signal.SIGINT)  # a later Ctrl-C is ignored while cleaning up
        time.sleep(0.05)
        with pytest.raises(KeyboardInterrupt):
            interrupts.raise_if_requested()
    finally:
        interrupts.restore(previous)
    interrupts.raise_if_requested()  # restore forgets the request
    assert [signal.getsignal(sig) for sig in interrupts.SIGNALS] == previous
