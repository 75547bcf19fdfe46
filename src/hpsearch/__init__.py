"""hpsearch: hyperparameter search for PyTorch models, built on Optuna."""

__version__ = "0.1.0"
