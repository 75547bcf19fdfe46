"""A user's objective that takes its time: each epoch sleeps, longer for the trials named slow.

Fault tests start real `hpsearch worker` processes on it and kill them at chosen moments.
"""

from __future__ import annotations

import time
from typing import Any

import hpsearch


def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float:
    """Report a value that depends on x for each epoch, after sleeping."""
    if ctx.trial_number in ctx.config.get("fail_trials", []):
        raise ValueError(f"planned failure in trial {ctx.trial_number}")
    slow = ctx.trial_number in ctx.config.get("slow_trials", [])
    for epoch in range(1, ctx.max_epochs + 1):
        jitter = ctx.config.get("jitter", 0.0) * params["x"]  # workers finish at varied times
        time.sleep(ctx.config["slow_epoch" if slow else "epoch"] + jitter)
        ctx.report(epoch, score=-((params["x"] - 0.3) ** 2) - 0.1 / epoch)
    return -((params["x"] - 0.3) ** 2)
