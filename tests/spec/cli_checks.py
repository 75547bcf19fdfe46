"""Running the CLI on generated study files: in this process, or as `hpsearch` processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from hpsearch.cli import main
from repo import TEST_DATA

STORAGE_FILE = "trials.db"
# What must never appear in any command's output.
# A Python warning ("UserWarning: ...") is noise a user cannot act on, and breaks `export`'s CSV.
NEVER = ("Traceback", "other settings", "Fatal Python error", "KeyboardInterrupt", "Warning: ")
PROCESS_TIMEOUT_S = 300


@dataclass(frozen=True, repr=False)
class Done:
    """A finished command: its arguments, exit code and output (standard error included)."""

    args: tuple[str, ...]
    code: int
    output: str

    def __repr__(self) -> str:
        """The command and what it printed, for assertion messages."""
        return f"hpsearch {' '.join(self.args)} -> exit {self.code}\n{self.output}"

    @property
    def lines(self) -> list[str]:
        """The non-empty output lines."""
        return [line for line in self.output.splitlines() if line.strip()]


def storage_url(folder: Path) -> str:
    """The SQLite storage of the study in this folder."""
    return f"sqlite:///{folder / STORAGE_FILE}"


def training_args() -> tuple[str, ...]:
    """The committed test data, on the CPU."""
    return ("--data-dir", str(TEST_DATA), "--device", "cpu")


def invoke(*args: str) -> Done:
    """The CLI in this process, as click would run it from a shell."""
    result = CliRunner().invoke(main, list(args))
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        output += f"\nTraceback (in process): {type(exc).__name__}: {exc}"
    return Done(tuple(args), result.exit_code, output)


@contextlib.contextmanager
def isolated(folder: Path) -> Iterator[None]:
    """Work in folder; the sys.path entries a user's entry adds, and its modules, are taken back."""
    path = list(sys.path)
    try:
        with contextlib.chdir(folder):
            yield
    finally:
        sys.path[:] = path
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(folder)):
                del sys.modules[name]


def start(folder: Path, *args: str) -> subprocess.Popen[str]:
    """The real CLI in its own process, working in the study's folder."""
    env = dict(os.environ, HPSEARCH_OFFLINE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "hpsearch", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str], args: Sequence[str]) -> Done:
    """Wait for a process started by `start`."""
    try:
        output, _ = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        output += f"\n(killed after {PROCESS_TIMEOUT_S} s)"
    return Done(tuple(args), proc.returncode, output)


def hpsearch(folder: Path, *args: str) -> Done:
    """One hpsearch command in its own process, to its end."""
    return finish(start(folder, *args), args)


def hpsearch_all(folder: Path, commands: Sequence[Sequence[str]]) -> list[Done]:
    """Several hpsearch commands at once, each in its own process."""
    procs = [start(folder, *args) for args in commands]
    return [finish(proc, args) for proc, args in zip(procs, commands, strict=True)]


def unclean(done: Done) -> list[str]:
    """What a command printed that it never should."""
    return [word for word in NEVER if word in done.output]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder below folder, with its size and modification time.

    Python's own bytecode caches (__pycache__, written when a user's file is imported) are
    left out: Python writes them, not hpsearch.
    """
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if "__pycache__" not in p.parts
    }
