"""Embedding a labelled data set with a frozen branch (for the classification probes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from multivic.branch import Branch
from multivic.evaluation.embed import embed_dataset


@dataclass
class Features:
    representations: Tensor  # [N, encoder out_dim], float32 on CPU
    embeddings: Tensor  # [N, expander out_dim], float32 on CPU
    labels: Tensor  # [N] int64


def extract_features(
    branch: Branch,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 256,
    num_workers: int = 0,
    max_samples: int | None = None,
    seed: int = 0,
    collate=None,
    skip_unreadable: bool = False,
) -> Features:
    """Encoder outputs and expander outputs of every ``(input, label)`` item (or a seeded random
    subset of ``max_samples``), with the branch in eval mode; with ``skip_unreadable`` an item
    that cannot be read is left out (and warned about) instead of stopping."""
    if max_samples is not None and max_samples < len(dataset):  # type: ignore[arg-type]
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(dataset), generator=g)[:max_samples].sort().values  # type: ignore[arg-type]
        dataset = Subset(dataset, idx.tolist())
    out = embed_dataset(
        branch,
        dataset,
        device,
        collate=collate,
        batch_size=batch_size,
        num_workers=num_workers,
        labelled=True,
        skip_unreadable=skip_unreadable,
    )
    return Features(out.representations, out.embeddings, out.labels)  # type: ignore[arg-type]
