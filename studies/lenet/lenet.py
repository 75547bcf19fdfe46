"""LeNet-5 on MNIST, written the way a user would: own model, own data, own training loop.

hpsearch suggests `params` from lenet.toml's [search], seeds torch before each call, and
prunes through ctx.report. Run it with `hpsearch run --study lenet --trials 20`.
"""

from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.datasets import MNIST

import hpsearch

Pair = tuple[torch.Tensor, torch.Tensor]


class LeNet(nn.Module):
    """Two conv-pool stages and three linear layers; BatchNorm or dropout as the regularizer."""

    def __init__(self, channels: int, batch_norm: bool, dropout: float) -> None:
        super().__init__()
        norm = nn.BatchNorm2d if batch_norm else lambda c: nn.Identity()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 5, padding=2), norm(channels), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 16, 5), norm(16), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        )  # fmt: skip
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@cache
def mnist(root: str, train: bool, limit: int) -> Pair:
    """MNIST as normalized tensors, read once per process (torchvision reads MNIST/raw)."""
    data = MNIST(root, train=train, download=False)
    x = data.data[:limit].float().div(255).sub(0.1307).div(0.3081).unsqueeze(1)
    return x, data.targets[:limit]


def splits(ctx: hpsearch.TrialContext) -> tuple[Pair, Pair]:
    """A fixed 5:1 train/validation split of the first `data_subset` training images."""
    x, y = mnist(str(ctx.data_dir), True, ctx.config["data_subset"])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    cut = len(x) * 5 // 6
    train, valid = order[:cut], order[cut:]
    return (x[train].to(ctx.device), y[train].to(ctx.device)), (
        x[valid].to(ctx.device), y[valid].to(ctx.device))  # fmt: skip


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float:
    (x, y), (xv, yv) = splits(ctx)
    model = LeNet(params["channels"], params["batch_norm"], params.get("dropout", 0.0))
    model = model.to(ctx.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
    best = 0.0
    for epoch in range(1, ctx.max_epochs + 1):
        model.train()
        order = torch.randperm(len(x), device=x.device)
        for i in range(0, len(x), params["batch_size"]):
            batch = order[i : i + params["batch_size"]]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        valid = accuracy(model, xv, yv)
        ctx.report(epoch, valid_accuracy=valid, train_loss=loss.item())
        if valid > best:  # keep the best epoch's weights for the report's test
            best = valid
            ctx.save_weights(model)
    return best


def test(params: dict[str, Any], ctx: hpsearch.TrialContext, weights: dict) -> dict:
    """The selected trial's weights on MNIST's held-out test images, once."""
    model = LeNet(params["channels"], params["batch_norm"], params.get("dropout", 0.0))
    model.load_state_dict(weights)
    x, y = mnist(str(ctx.data_dir), False, 10_000)
    return {"accuracy": accuracy(model, x, y)}
