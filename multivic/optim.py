"""Optimisers and the learning-rate schedule of the released VICReg code.

- LARS with the released code's arithmetic: weight decay and the layer-wise trust ratio
  η‖w‖ / ‖g + wd·w‖ (η = 0.001) apply to weights with more than one dimension; biases and
  normalisation parameters get neither, as the released code's ``exclude_bias_and_norm``
  filters. Adaptation is a per-group switch (``lars_adapt``), independent of the weight decay:
  weights adapt even with ``weight_decay: 0``, as in the released code.
- AdamW with the same parameter split for weight decay (it ignores ``lars_adapt``).
- Linear warm-up then cosine decay to ``final_lr_ratio`` of the peak, stepped per optimiser step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch
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
    momentum: float
    betas: Sequence[float]
    warmup_epochs: float
    final_lr_ratio: float
    label: str = "model"


def split_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: weights (ndim > 1) with decay and LARS adaptation, biases and norm
    parameters with neither.

    ``lars_adapt`` is set explicitly rather than inferred from the decay, so that a recipe with
    ``weight_decay: 0`` still adapts its weights (LARS would otherwise silently become SGD).
    """
    decay, no_decay = [], []
    seen: set[int] = set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars_adapt": True},
        {"params": no_decay, "weight_decay": 0.0, "lars_adapt": False},
    ]


class LARS(torch.optim.Optimizer):
    """LARS as in the released VICReg code: per parameter with gradient g,

        u = g + wd·w;  u *= η‖w‖/‖u‖ (1 where ‖w‖ or ‖u‖ is 0);  m = μ·m + u;  w -= lr·m

    where the decay is the group's ``weight_decay`` and the scaling applies only in groups with
    ``lars_adapt`` true; the two are independent, so a weight group adapts at wd 0 too. A group
    without the key (e.g. from an optimiser state saved before the key existed) adapts the
    parameters with ndim > 1, the released code's own filter. Written out rather than using
    timm's Lars, whose trust ratio is η‖w‖/(‖g‖ + wd‖w‖ + eps) and whose adaptation is tied to a
    non-zero weight decay unless ``always_adapt`` is set.

    The momentum state is named ``momentum_buffer`` and holds the same quantity as timm's and
    SGD's (no dampening, no Nesterov), so checkpoints written with timm's Lars resume with their
    momentum.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        eta: float = 0.001,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        if momentum < 0.0:
            raise ValueError(f"invalid momentum: {momentum}")
        # lars_adapt None = decide per parameter by ndim (see the class docstring).
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, eta=eta, lars_adapt=None)
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # load_state_dict keeps the saved groups as they were, so a state saved by timm's Lars
        # lacks eta (it called it trust_coeff) and lars_adapt (None: the ndim rule above).
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("eta", group.get("trust_coeff", 0.001))
            group.setdefault("lars_adapt", None)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            adapt_group = group.get("lars_adapt")
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if group["weight_decay"] != 0:
                    # Decay first, so the trust ratio measures the whole update (released order).
                    update = update.add(p, alpha=group["weight_decay"])  # leaves p.grad as it is
                if (p.ndim > 1) if adapt_group is None else adapt_group:
                    w_norm = torch.linalg.vector_norm(p)
                    u_norm = torch.linalg.vector_norm(update)
                    one = torch.ones_like(w_norm)
                    # Nested where (not a Python branch) keeps the step free of host syncs.
                    q = torch.where(w_norm > 0, torch.where(u_norm > 0, group["eta"] * w_norm / u_norm, one), one)
                    update = update.mul(q)
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    # m starts at 0, so after the first step m = u exactly.
                    buf = state["momentum_buffer"] = torch.clone(update).detach()
                else:
                    buf.mul_(group["momentum"]).add_(update)
                p.add_(buf, alpha=-group["lr"])
        return loss


def build_optimizer(
    name: str,
    groups: Iterable[dict],
    lr: float,
    momentum: float = 0.9,
    betas: Sequence[float] = (0.9, 0.999),
) -> torch.optim.Optimizer:
    """ "lars" (trust coefficient 0.001, as released) or "adamw", over ``groups``.

    Each group's ``weight_decay`` and (for LARS) ``lars_adapt`` come from the groups, e.g.
    :func:`split_decay_groups`; AdamW keeps the ``lars_adapt`` key in its groups and never reads it.
    """
    groups = list(groups)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum, eta=0.001)
    if name == "adamw":
        # foreach: one multi-tensor kernel per group instead of ~10 small ops per parameter.
        # PyTorch picks it by default only on CUDA; on CPU the per-parameter path is several
        # times slower (benchmarks/step.py measures it). Bitwise the same update, state and
        # checkpoints.
        return torch.optim.AdamW(groups, lr=lr, betas=(float(betas[0]), float(betas[1])), foreach=True)
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
