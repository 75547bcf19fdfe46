"""The GPU check's tiny CPU mode, so the script a GPU session runs has not rotted."""

from __future__ import annotations

import os
import re
import subprocess
import sys

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
