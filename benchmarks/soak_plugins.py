"""Plug-ins for benchmarks/soak.py, loaded through a recipe's ``imports:``; nothing in multivic/
is changed.

``vicreg_poisoned``: VICReg whose loss is NaN at one chosen optimiser step. The step is counted
by a buffer of the objective (``forward_calls``, incremented by each forward in training mode,
one per optimiser step with ``train.grad_accum_steps=1``). Being a buffer, it is part of the
model's state_dict, so every checkpoint stores it and a resumed process continues the count
where the checkpoint left it: the NaN recurs at the same step however often the run is killed
and resumed. (A counter in a Python attribute would restart from 0 in every resumed process.)
The poison multiplies ``z_a`` by NaN after the encoder and expander, so batch-norm statistics
stay finite; the gradients are then NaN everywhere and ``train.on_nonfinite=skip`` skips it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from multivic import register_objective
from multivic.objectives import VICRegLoss


@register_objective("vicreg_poisoned")
class PoisonedVICReg(VICRegLoss):
    """VICReg whose loss is NaN at optimiser step ``poison_step`` (1-based; 0: never)."""

    def __init__(self, poison_step: int = 0, check_finite: bool = True) -> None:
        super().__init__(check_finite=check_finite)
        if poison_step < 0:
            raise ValueError(f"poison_step must be >= 0; got {poison_step}")
        self.poison_step = poison_step
        self.register_buffer("forward_calls", torch.zeros((), dtype=torch.int64))

    def forward(self, z_a: Tensor, z_b: Tensor):  # type: ignore[override]
        if self.training:
            self.forward_calls += 1
            if self.poison_step and int(self.forward_calls) == self.poison_step:
                z_a = z_a * float("nan")
        return super().forward(z_a, z_b)
