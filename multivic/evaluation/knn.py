"""Weighted k-NN classification on cosine similarity (the usual SSL protocol: k=20, T=0.07)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def knn_classify(
    train_features: Tensor,
    train_labels: Tensor,
    query_features: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    block_size: int = 1024,
) -> Tensor:
    """Predicted labels of the queries.

    Each query takes its k most cosine-similar training samples; neighbour j votes for its
    class with weight exp(sim_j / T); the class with the largest total wins.

    Args:
        train_features: [N, D]; train_labels: [N] int64 in [0, num_classes).
        query_features: [M, D].
    Returns:
        [M] int64 predictions.
    """
    bank = F.normalize(train_features.float(), dim=1)
    queries = F.normalize(query_features.float(), dim=1)
    k = min(k, bank.shape[0])
    preds = []
    for start in range(0, queries.shape[0], block_size):
        sim = queries[start : start + block_size] @ bank.T  # [b, N]
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
        votes.scatter_add_(1, train_labels[top_idx], weights)
        preds.append(votes.argmax(dim=1))
    return torch.cat(preds)
