"""Embedding a labelled data set with a frozen branch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from multivic.branch import Branch


@dataclass
class Features:
    representations: Tensor  # [N, encoder out_dim], float32 on CPU
    embeddings: Tensor  # [N, expander out_dim], float32 on CPU
    labels: Tensor  # [N] int64


@torch.no_grad()
def extract_features(
    branch: Branch,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 256,
    num_workers: int = 0,
    max_samples: int | None = None,
    seed: int = 0,
) -> Features:
    """Encoder outputs and expander outputs of every sample (or a seeded random subset of
    ``max_samples``), with the branch in eval mode."""
    if max_samples is not None and max_samples < len(dataset):  # type: ignore[arg-type]
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(dataset), generator=g)[:max_samples].sort().values  # type: ignore[arg-type]
        dataset = Subset(dataset, idx.tolist())
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    was_training = branch.training
    branch.eval()
    reps, embs, labels = [], [], []
    for x, y in loader:
        r = branch.encode(x.to(device, non_blocking=True))
        reps.append(r.float().cpu())
        embs.append(branch.expander(r).float().cpu())
        labels.append(torch.as_tensor(y))
    branch.train(was_training)
    return Features(torch.cat(reps), torch.cat(embs), torch.cat(labels).long())
