"""An MLP on MNIST as a LightningModule: hpsearch's Report callback does the reporting.

hpsearch suggests `params` from lightning.toml's [search] and seeds torch before each call;
`Report(ctx)` reports every epoch's logged metrics, prunes, and keeps the best epoch's weights.
Run it with `hpsearch run --study lightning --trials 20`; it needs Lightning
(`pip install 'hpsearch[lightning]'`).
"""

import logging
import warnings
from functools import cache
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.datasets import MNIST

import hpsearch
from hpsearch.integrations.lightning import Report

Pair = tuple[torch.Tensor, torch.Tensor]

logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banner in every trial
warnings.filterwarnings("ignore", ".*does not have many workers.*")  # in-memory tensors
warnings.filterwarnings("ignore", ".*LeafSpec.*")  # torch's deprecation, inside Lightning


class Classifier(L.LightningModule):
    """Flatten, one hidden layer with dropout, ten logits; Adam at the searched rate."""

    def __init__(self, hidden: int, dropout: float, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, 10),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Pair, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)  # the epoch's mean
        return loss

    def validation_step(self, batch: Pair, batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.log("valid_loss", F.cross_entropy(logits, y))
        self.log("valid_accuracy", (logits.argmax(1) == y).float().mean())  # the study's metric

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


@cache
def mnist(root: str, train: bool, limit: int) -> Pair:
    """MNIST as normalized tensors, read once per process (torchvision reads MNIST/raw)."""
    data = MNIST(root, train=train, download=False)
    x = data.data[:limit].float().div(255).sub(0.1307).div(0.3081).unsqueeze(1)
    return x, data.targets[:limit]


def loaders(ctx: hpsearch.TrialContext, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """A fixed 5:1 train/validation split of the first `data_subset` training images."""
    x, y = mnist(str(ctx.data_dir), True, ctx.config["data_subset"])
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, valid = order[: len(x) * 5 // 6], order[len(x) * 5 // 6 :]
    return (
        DataLoader(TensorDataset(x[train], y[train]), batch_size=batch_size, shuffle=True),
        DataLoader(TensorDataset(x[valid], y[valid]), batch_size=1000),
    )  # shuffled by torch's generator, which hpsearch seeded: a trial reruns exactly on the CPU


def objective(params: dict[str, Any], ctx: hpsearch.TrialContext) -> float | None:
    train, valid = loaders(ctx, params["batch_size"])
    model = Classifier(params["hidden"], params["dropout"], params["lr"])
    report = Report(ctx)  # reports each epoch, prunes, keeps the best epoch's weights
    trainer = L.Trainer(
        max_epochs=ctx.max_epochs,
        callbacks=[report],
        accelerator="gpu" if ctx.device.type == "cuda" else ctx.device.type,
        devices=[ctx.device.index] if ctx.device.index is not None else 1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train, valid)  # optuna.TrialPruned propagates out of fit: let it
    return report.best  # the best epoch's valid_accuracy, whose weights were kept


def test(params: dict[str, Any], ctx: hpsearch.TrialContext, weights: dict) -> dict:
    """The selected trial's weights on MNIST's held-out test images, once."""
    model = Classifier(params["hidden"], params["dropout"], params["lr"])
    model.load_state_dict(weights)
    model.eval()
    x, y = mnist(str(ctx.data_dir), False, 10_000)
    with torch.no_grad():
        return {"accuracy": float((model(x).argmax(1) == y).float().mean())}
