"""Errors the library raises; the CLI turns each into one line and a non-zero exit."""

INTERRUPTED_EXIT = 130  # the exit status after Ctrl-C, of `run` and of each worker it starts


class HPSearchError(Exception):
    """Base of every error a user can fix; its message names the problem and the fix."""


class SpecError(HPSearchError):
    """A study file is missing, malformed or out of range."""


class StorageError(HPSearchError):
    """The storage URL is bad, the database is unreachable, or the stored study conflicts."""


class DataError(HPSearchError):
    """The data set is missing, unreadable or too small for the requested split."""


class UsageError(HPSearchError):
    """A command-line value is out of range."""
