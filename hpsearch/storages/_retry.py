"""Retry policies (tenacity): racing processes, and database outages ridden out by a trial."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")


def retry_race(
    make: Callable[[], T], racing: Callable[[BaseException], bool], attempts: int, step_s: float
) -> T:
    """make(), tried again after a growing wait (step_s, 2 step_s, ...) while a race fails it.

    Up to `attempts` calls; an error `racing` does not recognise, or the last one, is raised.
    """
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(racing),
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_incrementing(start=step_s, increment=step_s),
        reraise=True,
    )
    return retrying(make)


def mentions(*messages: str) -> Callable[[BaseException], bool]:
    """Whether an error's text holds one of `messages`: how a racing process shows itself."""
    return lambda exc: isinstance(exc, Exception) and any(m in str(exc) for m in messages)


def outage_cause(exc: BaseException) -> BaseException | None:
    """The dropped connection or unreachable database behind an error, if it is one.

    Optuna may wrap the driver's error (StorageInternalError) or chain it; a locked SQLite
    file reads the same way, and is as worth waiting out.
    """
    import optuna
    import sqlalchemy.exc

    kinds = (
        optuna.exceptions.StorageInternalError,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_outage(exc: BaseException) -> bool:
    """An error worth waiting out; never Ctrl-C, even one raised during an outage."""
    return isinstance(exc, Exception) and outage_cause(exc) is not None


def ride_out(seconds: float) -> tenacity.Retrying:
    """Retry a storage call through an outage for up to `seconds`, with jittered backoff.

    The jitter keeps workers from hammering a restarting server in lock step.
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_outage),
        stop=tenacity.stop_after_delay(seconds),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=2.0),
        reraise=True,
    )
