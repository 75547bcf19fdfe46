"""A user's objective as a user would write it: a tiny MLP on synthetic tensors, its own loop.

Tests copy this file next to a study file and name it in `objective.entry`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch
import torch.nn.functional as F

import hpsearch


def data(n: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A fixed, linearly separable two-class problem: 3/4 for training, 1/4 for validation."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, generator=g)  # first, so every n shares the problem and its first rows
    x = torch.randn(n, 8, generator=g)
    y = (x @ w > 0).long()
    cut = 3 * n // 4
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def build(params: dict[str, Any]) -> torch.nn.Sequential:
    """Linear, activation, optional dropout, linear: every searched parameter is used."""
    act = torch.nn.ReLU() if params["act"] == "relu" else torch.nn.Tanh()
    layers: list[torch.nn.Module] = [torch.nn.Linear(8, params["width"]), act]
    if "dropout" in params:
        layers.append(torch.nn.Dropout(params["dropout"]))
    return torch.nn.Sequential(*layers, torch.nn.Linear(params["width"], 2))


def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float:
    """Full-batch SGD; reports validation accuracy every epoch; fails or misbehaves on request."""
    mode = ctx.config.get("mode", "ok")
    if mode == "raise" or (mode == "raise-odd" and ctx.trial_number % 2 == 1):
        raise ValueError(f"boom in trial {ctx.trial_number}")
    if mode == "nan" or (mode == "nan-odd" and ctx.trial_number % 2 == 1):
        return math.nan
    if os.environ.get("TOY_RECORD"):  # what the function saw, for the tests to compare
        with open(os.environ["TOY_RECORD"], "a") as out:
            out.write(f"{ctx.trial_number} {ctx.seed} {torch.initial_seed()} {sorted(params)}\n")
    (xt, yt), (xv, yv) = data(int(ctx.config.get("n", 512)))
    model = build(params).to(ctx.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"])
    accuracy = 0.0
    if mode == "sanity":  # as Lightning's sanity check would: the untrained model as epoch 1
        ctx.report(1, valid_accuracy=0.5)
    shift = {"from-0": -1, "past-max": 1}.get(mode, 0)  # epochs counted wrongly
    for epoch in range(1, ctx.max_epochs + 1):
        epoch += shift
        model.train()
        loss = F.cross_entropy(model(xt), yt)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(xv).argmax(1) == yv).float().mean())
        if mode == "no-metric":
            ctx.report(epoch, train_loss=loss.item())
        ctx.report(epoch, valid_accuracy=accuracy, train_loss=loss.item())
    if mode != "no-save":
        ctx.save_weights(model)
    if mode == "by-threads":  # as float sums can: the result depends on the thread count
        accuracy -= 1e-6 * torch.get_num_threads()
    return accuracy


def test(params: dict[str, Any], ctx: hpsearch.TrialContext, weights: dict[str, Any]) -> dict:
    """The selected trial's weights on fresh data from the same problem."""
    model = build(params)
    model.load_state_dict(weights)
    model.eval()
    _, (x, y) = data(2048)
    with torch.no_grad():
        logits = model(x)
    accuracy = float((logits.argmax(1) == y).float().mean())
    mode = ctx.config.get("test_mode", "ok")
    if mode == "float":  # a natural slip: the number instead of a dict
        return accuracy  # type: ignore[return-value]
    result: dict[str, Any] = {"accuracy": accuracy, "loss": float(F.cross_entropy(logits, y))}
    predicted = logits.argmax(1)
    per_class = [float((predicted[y == c] == c).float().mean()) for c in (0, 1)]
    if mode == "per-class-dict":  # keyed by class name, no `classes`
        result["per_class"] = {"neg": per_class[0], "pos": per_class[1]}
    if mode == "matrix":  # a tensor matrix, a list per class, the names
        confusion = torch.zeros(2, 2, dtype=torch.int64)
        confusion.index_put_((y, predicted), torch.ones_like(y), accumulate=True)
        result |= {"confusion": confusion, "per_class": per_class, "classes": ["neg", "pos"]}
    if mode == "ragged":  # per_class for 3 classes, but 2 names
        result |= {"per_class": [*per_class, 0.5], "classes": ["neg", "pos"]}
    return result
