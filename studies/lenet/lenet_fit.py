"""The same LeNet-5, trained by hpsearch.fit instead of a hand-written loop."""

from typing import Any

import torch
from lenet import LeNet, accuracy, mnist, splits  # beside this file: its folder is on sys.path

import hpsearch


def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float:
    train, valid = splits(ctx)
    model = LeNet(params["channels"], batch_norm=True, dropout=0.0).to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
    value = hpsearch.fit(model, optimizer, train, valid, ctx, batch_size=params["batch_size"])
    ctx.save_weights(model)  # the restored best epoch
    return value


def test(params: dict[str, Any], ctx: hpsearch.TrialContext, weights: dict) -> dict:
    model = LeNet(params["channels"], batch_norm=True, dropout=0.0)
    model.load_state_dict(weights)
    x, y = mnist(str(ctx.data_dir), False, 10_000)
    return {"accuracy": accuracy(model, x, y)}
