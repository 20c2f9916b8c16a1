"""The learning-rate schedules of a run: one per optimiser part, stepped once per optimiser step."""

from __future__ import annotations

import functools
from typing import Sequence

import torch
from torch.optim.lr_scheduler import LambdaLR

from multivic.optim import OptimizerSpec, warmup_cosine


def build_schedules(
    parts: Sequence[torch.optim.Optimizer], specs: Sequence[OptimizerSpec], steps_per_epoch: int, epochs: int
) -> list[LambdaLR]:
    """Linear warm-up over ``warmup_epochs`` then cosine to ``final_lr_ratio`` × peak, per part.

    ``steps_per_epoch`` must be the number of optimiser steps that really run in an epoch (the
    loader keeps whole accumulation windows only, so it is len(loader) // grad_accum_steps
    exactly); otherwise the cosine ends early or late. The loop steps these by hand, once per
    optimiser step: Accelerate's scheduler wrapper would step them once per process.
    """
    total_steps = steps_per_epoch * epochs
    return [
        LambdaLR(
            part,
            functools.partial(
                warmup_cosine,
                total_steps=total_steps,
                warmup_steps=int(round(spec.warmup_epochs * steps_per_epoch)),
                final_ratio=spec.final_lr_ratio,
            ),
        )
        for part, spec in zip(parts, specs)
    ]
