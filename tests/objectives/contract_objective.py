"""A user's objective for the contract suite: it tells the tests what `ctx` gave it.

Tests copy this file next to a study file (as `contract.py`) and name it in `objective.entry`,
as toy_objective.py is used. It imports only what a user's code would. `ctx.config["mode"]`
picks the behaviour: "ok" trains a tiny classifier, "fit" trains through `hpsearch.fit`, and the
other modes break the contract in one documented way each, after a valid epoch 1 where that
matters, so the tests can check that the valid row stays and the bad one never lands.

What it saw goes on the trial through `ctx.trial.set_user_attr` (the docs' "anything else").
"""

from __future__ import annotations

import math
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
import torch.nn.functional as F

import hpsearch

SEEN = "contract_seen"  # the user attribute holding what the function saw


def data(n: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """A fixed two-class problem from its own generator (the global RNG stays the trial's)."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, generator=g)
    x = torch.randn(n, 4, generator=g)
    y = (x @ w > 0).long()
    cut = 3 * n // 4
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def build(params: dict[str, Any]) -> torch.nn.Sequential:
    """Linear, the searched activation, linear."""
    act = torch.nn.ReLU() if params["act"] == "relu" else torch.nn.Tanh()
    return torch.nn.Sequential(torch.nn.Linear(4, 6), act, torch.nn.Linear(6, 2))


def seen(params: dict[str, Any], ctx: hpsearch.TrialContext) -> dict[str, Any]:
    """What the function was given; the random draws come first, straight after the seeding."""
    draws = {
        "torch": torch.rand(3).tolist(),
        "numpy": np.random.rand(3).tolist(),
        "random": [random.random() for _ in range(3)],
    }
    return {
        "draws": draws,
        "params": dict(params),
        "device": str(ctx.device),
        "device_is_torch": isinstance(ctx.device, torch.device),
        "seed": ctx.seed,
        "data_dir": str(ctx.data_dir),
        "data_dir_is_path": isinstance(ctx.data_dir, Path),
        "max_epochs": ctx.max_epochs,
        "trial_number": ctx.trial_number,
        "config": dict(ctx.config),
        "metric": ctx.metric,
        "trial_type": type(ctx.trial).__name__,
        "trial_is_optuna": isinstance(ctx.trial, optuna.trial.BaseTrial),
        "trial_attr_number": ctx.trial.number,
        "trial_params": dict(ctx.trial.params),
        "pid": os.getpid(),
    }


def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> Any:
    """Train, report and save as documented, or break the contract as `mode` says."""
    saw = seen(params, ctx)
    ctx.trial.set_user_attr(SEEN, saw)
    if "rendezvous" in ctx.config:
        meet(Path(ctx.config["rendezvous"]))
    mode = ctx.config["mode"]
    if mode == "fit":
        return fit(params, ctx)
    if mode in BAD_RETURNS:
        ctx.report(1, score=0.5)
        return BAD_RETURNS[mode]
    if mode == "raise":
        ctx.report(1, score=0.5)
        raise RuntimeError(f"my bug in trial {ctx.trial_number}")
    if mode in BAD_REPORTS:
        if mode not in ("epoch-0", "epoch-1.5"):
            ctx.report(1, score=0.5)  # a valid row, which must stay
        BAD_REPORTS[mode](ctx)
        return 0.5
    if mode == "skip":  # epochs 1 and 3 only; numbers as a tensor and numpy; seconds given once
        ctx.report(1, score=torch.tensor(0.25), extra=np.float32(2.0))
        ctx.report(3, score=np.float64(0.125), seconds=7.5)
        return 0.125
    return train(params, ctx, saw["draws"])


def meet(folder: Path, timeout: float = 60.0) -> None:
    """Wait until two processes have run a trial here: each worker of `--workers 2` gets one."""
    folder.mkdir(exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)


def train(
    params: dict[str, Any], ctx: hpsearch.TrialContext, draws: dict[str, list[float]]
) -> float:
    """Full-batch SGD; the score mixes in the numpy and random draws, so a rerun repeats all three.

    The weights are saved at every epoch with the epoch number among them: only the last save
    may survive. A pruned trial records that ctx.report raised TrialPruned, then lets it go.
    """
    (xt, yt), (xv, yv) = data(int(ctx.config["n"]))
    model = build(params).to(ctx.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"])
    jitter = 1e-3 * (draws["numpy"][0] + draws["random"][0])
    score = math.inf
    for epoch in range(1, ctx.max_epochs + 1):
        loss = F.cross_entropy(model(xt.to(ctx.device)), yt.to(ctx.device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            score = float(F.cross_entropy(model(xv.to(ctx.device)), yv.to(ctx.device))) + jitter
        try:
            ctx.report(epoch, score=score, train_loss=loss.item())
        except optuna.TrialPruned as exc:
            ctx.trial.set_user_attr("raised", f"{type(exc).__module__}.{type(exc).__name__}")
            raise
        ctx.trial.set_user_attr("after_report", epoch)
        ctx.save_weights({**model.state_dict(), "saved_epoch": torch.tensor(epoch)})
    return score


def fit(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float:
    """hpsearch.fit on tensors whose training inputs turn upside down after epoch 3.

    Validation is the training set itself, so it improves for three epochs, then worsens as
    the model learns the inverted inputs: the best epoch is in the middle, and early stopping
    has something to stop.
    """
    (x, y), _ = data(int(ctx.config["n"]))
    model = build(params).to(ctx.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"])
    batches = []

    def turn(batch: torch.Tensor) -> torch.Tensor:  # one batch per epoch: the whole tensor
        batches.append(len(batch))
        return batch if len(batches) <= 3 else -batch

    value = hpsearch.fit(
        model, optimizer, (x, y), (x, y), ctx, batch_size=len(x), patience=2,
        early_stopping=ctx.config["early_stopping"], augment=turn,
    )  # fmt: skip
    model.eval()
    with torch.no_grad():  # what the model holds now: the restored epoch's weights
        logits = model(x)
        loss = float(F.cross_entropy(logits, y, reduction="sum")) / len(x)
        accuracy = float((logits.argmax(1) == y).float().mean())
    ctx.trial.set_user_attr("after_fit", {"valid_loss": loss, "valid_accuracy": accuracy})
    return value


def test(params: dict[str, Any], ctx: hpsearch.TrialContext, weights: dict[str, Any]) -> dict:
    """What `test` got, as numbers: the saved epoch, the seed, the device, the trial's lr."""
    weights = dict(weights)
    saved_epoch = int(weights.pop("saved_epoch"))
    model = build(params)
    model.load_state_dict(weights)  # the rest is the model's own state dict
    (_, _), (x, y) = data(int(ctx.config["n"]))
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    return {
        "accuracy": accuracy,
        "saved_epoch": saved_epoch,
        "seed": ctx.seed,
        "on_cpu": float(ctx.device == torch.device("cpu")),
        "trial_number": ctx.trial_number,
        "lr": params["lr"],
        "relu": float(params["act"] == "relu"),
    }


BAD_RETURNS: dict[str, Any] = {
    "return-nan": math.nan,
    "return-inf": math.inf,
    "return-none": None,
    "return-str": "high",
    "return-numeric-str": "0.5",
    "return-dict": {"score": 0.5},
}
BAD_REPORTS = {
    "no-metric": lambda ctx: ctx.report(2, train_loss=0.5),
    "metric-not-a-number": lambda ctx: ctx.report(2, score="high"),
    "metric-a-list": lambda ctx: ctx.report(2, score=[0.5, 0.25]),
    "other-not-a-number": lambda ctx: ctx.report(2, score=0.5, note="fine"),
    "metric-numeric-str": lambda ctx: ctx.report(2, score="0.5"),
    "metric-a-tensor": lambda ctx: ctx.report(2, score=torch.linspace(0, 1, 100)),
    "epoch-0": lambda ctx: ctx.report(0, score=0.5),
    "epoch-1.5": lambda ctx: ctx.report(1.5, score=0.5),
    "repeat": lambda ctx: ctx.report(1, score=0.5),
    "backwards": lambda ctx: (ctx.report(3, score=0.5), ctx.report(2, score=0.5)),
    "past-max": lambda ctx: ctx.report(ctx.max_epochs + 1, score=0.5),
}
