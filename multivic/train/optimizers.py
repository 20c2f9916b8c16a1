"""The optimisers of a run as one optimiser, so that mixed precision steps them as one.

A run has one optimiser over the whole model or one per branch (LARS for a ResNet, AdamW for a
ViT). Prepared separately, each Accelerate optimiser's ``step()`` would call the shared fp16
GradScaler's ``step`` and ``update``: the scale was updated once per branch per step, and an
overflow in one branch skipped only that branch's step. :class:`JointOptimizer` is prepared
once, so the scaler unscales every branch's gradients, skips the whole step if any of them
overflowed, and updates its scale once per optimiser step.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from multivic.optim import OptimizerSpec, build_optimizer, split_decay_groups


class JointOptimizer(torch.optim.Optimizer):
    """Several optimisers behind one ``Optimizer`` interface.

    ``param_groups`` is the concatenation of the parts' groups (the same dicts, so a schedule
    attached to a part changes what the joint optimiser shows); ``step`` and ``zero_grad`` run
    every part; the state dict holds each part's.
    """

    def __init__(self, parts: Sequence[torch.optim.Optimizer]) -> None:
        # Optimizer.__init__ is not called: it would build param groups of its own; the parts
        # own the groups and the state.
        self.parts = list(parts)
        self.defaults: dict[str, Any] = {}

    @property  # type: ignore[override]
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for part in self.parts for g in part.param_groups]

    @property  # type: ignore[override]
    def state(self) -> dict[Any, Any]:
        """A read-only merge of the parts' per-parameter states."""
        return {p: s for part in self.parts for p, s in part.state.items()}

    def step(self, closure: Callable | None = None) -> None:  # type: ignore[override]
        if closure is not None:
            raise ValueError("JointOptimizer.step takes no closure")
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return {"parts": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        parts = state_dict["parts"]
        if len(parts) != len(self.parts):
            raise ValueError(f"the checkpoint holds {len(parts)} optimisers, this run has {len(self.parts)}")
        for part, state in zip(self.parts, parts):
            part.load_state_dict(state)

    def __repr__(self) -> str:
        return f"JointOptimizer({', '.join(type(p).__name__ for p in self.parts)})"


def build_joint_optimizer(specs: Sequence[OptimizerSpec], samples_per_step: int) -> JointOptimizer:
    """One part per spec, at peak lr base_lr × samples_per_step / 256 (the linear scaling rule),
    weight decay on weights only (:func:`multivic.optim.split_decay_groups`)."""
    return JointOptimizer(
        [
            build_optimizer(
                s.name,
                split_decay_groups(s.module, s.weight_decay),
                s.base_lr * samples_per_step / 256,
                s.momentum,
                s.betas,
            )
            for s in specs
        ]
    )
