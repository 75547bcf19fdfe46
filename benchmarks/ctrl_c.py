"""Ctrl-C on the headline command: seconds from SIGINT to the process's exit, mid-epoch.

Starts `hpsearch run --study mnist-reg --trials 200 --no-progress` in a fresh folder (SQLite),
waits until the first epoch is stored plus 1.7 s (so the signal lands mid-epoch), sends SIGINT
to the whole process group, as a terminal's Ctrl-C does, and times the exit. Alternates the
default workers and `--workers 1`; prints each run's time, exit code and stored trial states.

    HPSEARCH_DATA_DIR=../shared/data python benchmarks/ctrl_c.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MID_EPOCH_S = 1.7


def first_epoch_stored(db: Path) -> bool:
    """Whether any trial has reported an epoch yet."""
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("select count(*) from trial_intermediate_values").fetchone()
    except sqlite3.Error:
        return False  # not created yet
    return bool(row[0])


def once(extra: list[str], root: Path) -> str:
    """One run cut by SIGINT: a line with the seconds to exit, the code and the trial states."""
    folder = Path(tempfile.mkdtemp(dir=root))
    cmd = [sys.executable, "-m", "hpsearch", "run", "--study", "mnist-reg", "--trials", "200"]
    proc = subprocess.Popen(
        [*cmd, "--no-progress", *extra],
        cwd=folder,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while not first_epoch_stored(folder / "hpsearch.db"):
        time.sleep(0.05)
    time.sleep(MID_EPOCH_S)
    sent = time.perf_counter()
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=120)
    took = time.perf_counter() - sent
    with sqlite3.connect(folder / "hpsearch.db") as conn:
        states = conn.execute("select state, count(*) from trials group by state").fetchall()
    name = " ".join(extra) or "default workers"
    return f"{name}: {took:.2f} s to exit, code {proc.returncode}, trials {dict(states)}"


def main() -> None:
    """Alternate the default and one worker, `--repeats` times each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for extra in ([], ["--workers", "1"]):
                print(once(extra, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
