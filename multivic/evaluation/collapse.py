"""Collapse statistics of a batch of embeddings."""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def embedding_std_stats(z: Tensor) -> dict[str, float]:
    """Per-dimension standard deviation of ``z`` [N, D] (unbiased, over rows) and effective rank.

    Returns ``std_mean``, ``std_min`` and ``effective_rank``: exp of the entropy of the
    normalised singular values of the centred embeddings (Roy & Vetterli, 2007); D for
    perfectly spread embeddings, near 1 for a collapse onto a line.
    """
    z = z.double()
    std = z.std(dim=0, unbiased=True)
    zc = z - z.mean(dim=0)
    s = torch.linalg.svdvals(zc)
    p = s / s.sum().clamp_min(1e-12)
    p = p[p > 0]
    erank = float(torch.exp(-(p * p.log()).sum())) if p.numel() else 0.0
    return {"std_mean": float(std.mean()), "std_min": float(std.min()), "effective_rank": erank}
