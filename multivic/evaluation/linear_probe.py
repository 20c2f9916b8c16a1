"""Linear probe on frozen features: a linear classifier trained on the training split.

This is the fast frozen-feature protocol (features computed once without augmentation,
standardised with the training split's statistics, then a softmax classifier trained with
AdamW), not the paper's 100-epoch augmented ImageNet probe; numbers are comparable across
runs of this toolkit, and the k-NN number sits beside them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    epochs: int = 100,
    lr: float = 0.01,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Train on (train_features [N, D], train_labels [N]); report top-1 and top-5 (percent) on the test split.

    Top-5 counts a hit when the label is among the min(5, num_classes) highest scores.
    """
    mean = train_features.mean(dim=0, keepdim=True)
    std = train_features.std(dim=0, keepdim=True).clamp_min(1e-6)
    x_train = ((train_features - mean) / std).float()
    x_test = ((test_features - mean) / std).float()
    generator = torch.Generator().manual_seed(seed)
    head = torch.nn.Linear(x_train.shape[1], num_classes)
    with torch.no_grad():
        head.weight.normal_(0, 0.01, generator=generator)
        head.bias.zero_()
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, -(-x_train.shape[0] // batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(x_train.shape[0], generator=generator)
            for start in range(0, x_train.shape[0], batch_size):
                idx = order[start : start + batch_size]
                loss = F.cross_entropy(head(x_train[idx]), train_labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    with torch.no_grad():
        logits = head(x_test)
    return topk_accuracy(logits, test_labels, num_classes)


def topk_accuracy(logits: Tensor, labels: Tensor, num_classes: int) -> dict[str, float]:
    """Top-1 and top-5 accuracy in percent of [M, C] logits against [M] labels."""
    k5 = min(5, num_classes)
    top = logits.topk(k5, dim=1).indices
    hits = top == labels[:, None]
    return {
        "top1": 100.0 * hits[:, 0].float().mean().item(),
        "top5": 100.0 * hits.any(dim=1).float().mean().item(),
    }
