"""Moved to :mod:`multivic.train`. This shim keeps the old keyword signature working until the
callers switch to ``fit(model, train_set, run_dir, optimizers, TrainSettings(...), collate_fn)``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from torch.utils.data import Dataset

from multivic.branch import JointEmbedding
from multivic.optim import OptimizerSpec
from multivic.run_dir import RunDir
from multivic.train import FitResult, TrainSettings, save_checkpoint
from multivic.train import fit as _fit

__all__ = ["FitResult", "TrainSettings", "fit", "save_checkpoint"]


def fit(
    model: JointEmbedding,
    train_set: Dataset,
    run_dir: RunDir,
    *,
    optimizers: Sequence[OptimizerSpec],
    collate_fn: Callable | None = None,
    **settings: Any,
) -> FitResult:
    """The old signature: the TrainSettings fields as keyword arguments."""
    return _fit(model, train_set, run_dir, optimizers, TrainSettings(**settings), collate_fn)
