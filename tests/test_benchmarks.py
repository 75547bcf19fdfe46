"""Benchmarks that must not rot: the GPU check's tiny CPU mode, and vs_peers' summary."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from repo import REPO


@pytest.mark.slow
def test_the_gpu_check_runs_every_step_in_its_cpu_mode() -> None:
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--cpu"],
        cwd=REPO,
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    block = done.stdout
    assert block.startswith("```markdown\n### GPU check: CPU (smoke run)"), block
    assert block.rstrip().endswith("```"), block
    for batch in (32, 128, 512):
        assert re.search(rf"^\| {batch} \| \d+\.\d\d \|$", block, re.M), block
    for workers in (1, 2):
        assert re.search(rf"^\| {workers} \| [1-9]\d* \| \d+\.\d\d \| \d+\.\d \|$", block, re.M)
    assert re.search(r"^rerun of trial #\d+: identical: the trial reproduces exactly$", block, re.M)
    assert re.search(r"^flowers-narrow: 1 trials x 1 epochs in \d+ s, best validation", block, re.M)


@pytest.mark.slow
def test_the_gpu_check_without_a_gpu_says_so_in_one_line() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    done = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"],
        cwd=REPO,
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert (
        done.stderr == "gpu_check: no GPU visible to torch; run it with --cpu for the smoke run\n"
    )


def _trial(
    name: str, start: float, ends: list[float], value: float | None, test: float | None
) -> dict[str, Any]:
    """A raw trial record of benchmarks/vs_peers.py; value None: stopped early (not completed)."""
    return {
        "id": name,
        "start": start,
        "end": ends[-1],
        "complete": value is not None,
        "value": value,
        "epoch_ends": ends,
        "valid": [0.99] * len(ends),  # per-epoch numbers never pick a trial, nor does test
        "test": test,
        "params": {},
    }


def _run(system: str, seed: int, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """One system-seed run as vs_peers.py stores it."""
    return {"system": system, "seed": seed, "wall_s": 240.0, "exit_codes": [0], "trials": trials}


def _hpsearch_run(
    seed: int, first_end: float, first: float, second_end: float, second: float
) -> dict[str, Any]:
    """Trials a (completes at first_end), b (better, at second_end), c (worse on validation,
    best on test: never picked), d (stopped early: never picked; seed 2 has none)."""
    trials = [
        _trial("a", 1, [10, 20, first_end], 0.90 + seed / 100, first),
        _trial("b", 21, [50, 90, second_end], 0.95 + seed / 100, second),
        _trial("c", 101, [150, 200], 0.93, 0.999),
    ]
    if seed < 2:
        trials.append(_trial("d", 41, [45, 50], None, None))
    return _run("hpsearch", seed, trials)


@pytest.mark.slow
def test_vs_peers_summarize_makes_the_table_and_plot_from_results(tmp_path: Path) -> None:
    results = {
        "profile": {
            "name": "cheap",
            "train_size": 12000,
            "valid_size": 3000,
            "budget_s": 240.0,
            "checkpoints_s": [30.0, 60.0, 120.0, 240.0],
        },
        "runs": [
            _hpsearch_run(0, 25, 0.895, 100, 0.948),
            _hpsearch_run(1, 40, 0.905, 110, 0.955),
            _hpsearch_run(2, 20, 0.915, 230, 0.970),
            _run("optuna", 0, [_trial("0", 2, [20, 50], 0.9, 0.90)]),
            _run("optuna", 1, [_trial("0", 2, [20, 70], 0.9, 0.92)]),
        ],
    }
    (tmp_path / "results.json").write_text(json.dumps(results))
    done = subprocess.run(
        [sys.executable, "benchmarks/vs_peers.py", "--summarize", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = (tmp_path / "table.md").read_text()
    assert done.stdout.strip() == table.strip()
    en_dash = "\u2013"  # between a range's ends
    rows = [line.replace(en_dash, "-") for line in table.splitlines() if line.startswith("| ")]
    assert rows[0] == "| system | 0.5 min | 1 min | 2 min | 4 min |"
    # test accuracy of the pick: None (nothing completed) ranks lowest; 2 seeds: the mean of two
    assert rows[1] == (
        "| hpsearch (3 seeds) | 89.50 (none-91.50) | 90.50 (89.50-91.50) "
        "| 94.80 (91.50-95.50) | 95.50 (94.80-97.00) |"
    )
    assert rows[2] == (
        "| optuna (2 seeds) | none (none-none) | none (none-90.00) "
        "| 91.00 (90.00-92.00) | 91.00 (90.00-92.00) |"
    )
    assert rows[4] == "| hpsearch (3 seeds) | 3 (2-3) | 6 (4-6) | 8 (5-8) | 10 (8-10) |"  # epochs
    assert rows[5] == "| optuna (2 seeds) | 1 (1-1) | 1.5 (1-2) | 2 (2-2) | 2 (2-2) |"
    assert rows[7] == "| hpsearch (3 seeds) | 2 (2-2) | 3 (2-3) | 4 (3-4) | 4 (3-4) |"  # trials
    assert (tmp_path / "vs_peers.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stored = json.loads((tmp_path / "results.json").read_text())
    assert stored["runs"][0]["checkpoints"]["240"]["trial"] == "b"
