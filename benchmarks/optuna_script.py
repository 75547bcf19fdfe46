"""The script a user would write instead of hpsearch, in the optuna-examples style.

A torchvision MNIST dataset, DataLoaders, the mnist-reg MLP, Optuna's RandomSampler and
MedianPruner, validation accuracy reported every epoch. benchmarks/vs_optuna.py runs it on the
same enqueued parameter sets as `hpsearch run`.

    python benchmarks/optuna_script.py DATA_DIR PARAMS_JSON EPOCHS
"""

from __future__ import annotations

import json
import sys

import optuna
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, random_split
from torchvision import datasets, transforms

HIDDEN = (500, 400, 300, 200, 100, 50)


def build(batch_norm: bool, dropout: float) -> nn.Sequential:
    """The mnist-reg MLP: Linear, LeakyReLU, then BatchNorm1d or Dropout, per block."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = 28 * 28
    for size in HIDDEN:
        layers += [nn.Linear(width, size), nn.LeakyReLU(0.01)]
        layers.append(nn.BatchNorm1d(size) if batch_norm else nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, 10))
    return nn.Sequential(*layers)


def loaders(root: str, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """48,000 training and 12,000 validation images, normalized as the MNIST examples do."""
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    full = datasets.MNIST(root, train=True, download=False, transform=tf)
    train, valid = random_split(full, [48000, 12000], generator=torch.Generator().manual_seed(0))
    return (
        DataLoader(train, batch_size=batch_size, shuffle=True),
        DataLoader(valid, batch_size=1000),
    )


def objective(trial: optuna.Trial, root: str, epochs: int) -> float:
    """Train one MLP and report validation accuracy every epoch."""
    batch_norm = trial.suggest_categorical("batch_norm", [True, False])
    dropout = 0.0 if batch_norm else trial.suggest_float("dropout", 0.1, 0.5, step=0.1)
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    weight_decay = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
    batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
    model = build(batch_norm, dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    train, valid = loaders(root, batch_size)
    accuracy = 0.0
    for epoch in range(epochs):
        model.train()
        for data, target in train:
            optimizer.zero_grad()
            F.cross_entropy(model(data), target).backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in valid:
                correct += int((model(data).argmax(1) == target).sum())
        accuracy = correct / len(valid.dataset)
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned
    return accuracy


def main() -> None:
    """Run every enqueued parameter set once."""
    root, params_json, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(),
    )
    parameter_sets = json.loads(params_json)
    for params in parameter_sets:
        study.enqueue_trial(params)
    study.optimize(lambda t: objective(t, root, epochs), n_trials=len(parameter_sets))


if __name__ == "__main__":
    main()
