"""Optimisers and the learning-rate schedule of the released VICReg code.

- LARS (timm's implementation) with weight decay and the layer-wise trust ratio applied only
  to weights with more than one dimension: biases and normalisation parameters get neither,
  as the released code's ``exclude_bias_and_norm`` filters. timm computes the trust ratio as
  η‖w‖ / (‖g‖ + wd‖w‖) where the released code uses η‖w‖ / ‖g + wd·w‖; with wd = 1e-6 the two
  differ by far less than a step's noise.
- AdamW with the same parameter split for weight decay.
- Linear warm-up then cosine decay to ``final_lr_ratio`` of the peak, stepped per optimiser step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from timm.optim import Lars
from torch import nn


@dataclass
class OptimizerSpec:
    """One optimiser of a run: which parameters, which algorithm, which schedule.

    A run has one (over the whole model) or one per branch, e.g. LARS for a ResNet and AdamW
    with its own learning rate for a ViT. ``base_lr`` is per 256 samples of global batch.
    """

    name: str
    module: "nn.Module"
    base_lr: float
    weight_decay: float
    momentum: float = 0.9
    betas: Sequence[float] = (0.9, 0.999)
    warmup_epochs: float = 10.0
    final_lr_ratio: float = 0.001
    label: str = "model"


def split_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: weights (ndim > 1) with decay, biases and norm parameters without."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    name: str,
    groups: Iterable[dict],
    lr: float,
    momentum: float = 0.9,
    betas: Sequence[float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """"lars" (trust coefficient 0.001, as released) or "adamw", over ``groups``."""
    groups = list(groups)
    if name == "lars":
        # always_adapt=False: timm then skips the trust ratio in groups with weight_decay 0.
        return Lars(groups, lr=lr, momentum=momentum, trust_coeff=0.001, always_adapt=False)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(float(betas[0]), float(betas[1])))
    raise ValueError(f"unknown optimizer {name!r}; known: lars, adamw")


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, final_ratio: float) -> float:
    """Multiplier of the peak learning rate at optimiser step ``step`` (0-based).

    Linear from 1/warmup_steps to 1 over the warm-up, then cosine from 1 to ``final_ratio``.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
