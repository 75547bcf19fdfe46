"""How far `hpsearch run --workers K` goes past the study's total, over repeated studies.

A worker starts a trial only while finished plus running trials fall short of the total,
counted and inserted under the study's write lock; the total should be exact. Before that
check, workers mid-trial when the total was reached finished their trial: up to K-1 over.

    python benchmarks/total_exact.py     # PostgreSQL too when HPSEARCH_TEST_POSTGRES is set
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from faults import cli, study_file, trials

WORKERS, TOTAL, REPEATS = 3, 8, 8


def one_study(url: str, folder: Path) -> tuple[int, int]:
    """Finished trials beyond the total, and trials left RUNNING, for one study."""
    study = study_file(folder, epoch=0.05)
    args = ["run", "--study", str(study), "--trials", str(TOTAL), "--workers", str(WORKERS)]
    proc = cli(*args, "--threads", "1", "--device", "cpu", "--no-progress", url=url)
    if proc.wait(timeout=600) != 0:
        raise RuntimeError(f"run exited with {proc.returncode}")
    states = [t.state.name for t in trials(url)]
    return states.count("COMPLETE") + states.count("PRUNED") - TOTAL, states.count("RUNNING")


def postgres_url() -> str | None:
    """A fresh database on the test server, when one is configured."""
    base = os.environ.get("HPSEARCH_TEST_POSTGRES")
    if not base:
        return None
    import sqlalchemy

    name = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    return base.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    """Print one Markdown row per storage."""
    print("| storage | studies | workers | total | over the total (each study) | stranded |")
    print("|---|---|---|---|---|---|")
    for kind in ("sqlite", "postgresql"):
        overs, stranded = [], 0
        started = time.perf_counter()
        for _ in range(REPEATS):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/t.db" if kind == "sqlite" else postgres_url()
                if url is None:
                    break
                over, left = one_study(url, Path(tmp))
                overs.append(over)
                stranded += left
        if overs:
            row = f"| {kind} | {len(overs)} | {WORKERS} | {TOTAL} | {overs} | {stranded} |"
            print(row + f" <!-- {time.perf_counter() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    sys.exit(main())
