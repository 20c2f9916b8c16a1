"""Non-finite losses and gradients: stop with a message that says where, or skip the step.

``stop`` (default): the objective's own check raises on a non-finite loss, naming the term and
the branch; a non-finite gradient raises here, naming the branches whose gradients hold it.
The last checkpoint is left as it is. ``skip``: the objective's check is turned off so that
every process runs its backward (DDP needs all of them to), the gradients, which DDP has
already averaged and are therefore the same on every process, are checked here, and a
non-finite step is not applied; it is counted (history.csv's ``skipped_steps``) and more than
``max_in_row`` in a row stop the run. Under fp16 the GradScaler already skips steps with
overflowing gradients (and lowers its scale); only a non-finite loss counts there.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import Tensor, nn

from multivic.errors import MultivicError
from multivic.train.checkpoint import TrainState

logger = logging.getLogger("multivic")


def gradient_norm(module: nn.Module) -> Tensor:
    """The global 2-norm of ``module``'s gradients (a 0-d tensor; 0 when none)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def nonfinite_branches(model: nn.Module) -> list[str]:
    """The names of the branches (and "objective") whose gradients hold NaN or Inf."""
    parts = dict(model.branches()) if hasattr(model, "branches") else {}
    if hasattr(model, "loss_fn"):
        parts["objective"] = model.loss_fn
    return [name for name, part in parts.items() if not math.isfinite(float(gradient_norm(part)))] or ["?"]


def describe_metrics(metrics: dict[str, Tensor]) -> str:
    """The non-finite loss terms among ``metrics``, e.g. "loss=nan, variance=nan"."""
    bad = [f"{k}={float(v)}" for k, v in sorted(metrics.items()) if not math.isfinite(float(v))]
    return ", ".join(bad) if bad else "the loss terms are finite"


class NonFiniteSteps:
    """The ``train.on_nonfinite`` policy, applied once per optimiser step."""

    def __init__(self, policy: str, max_in_row: int) -> None:
        if policy not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite must be 'stop' or 'skip'; got {policy!r}")
        self.policy, self.max_in_row = policy, max_in_row

    def diverged(self, reason: str, step: int, epoch: int, state: TrainState) -> None:
        """Step ``step`` (1-based) was not applied because of ``reason``: stop or count it."""
        if self.policy == "stop":
            raise MultivicError(
                f"training diverged at step {step} (epoch {epoch}): {reason}; lower optim.base_lr, set "
                "train.clip_grad_norm, or set train.on_nonfinite=skip, and run the same command to resume from the "
                "last checkpoint"
            )
        state.skipped_steps += 1
        state.skipped_in_row += 1
        logger.warning("skipped step %d (epoch %d): %s", step, epoch, reason)
        if state.skipped_in_row >= self.max_in_row:
            raise MultivicError(
                f"training diverged: {state.skipped_in_row} steps in a row were non-finite up to step {step} "
                f"(epoch {epoch}), the last: {reason}; lower optim.base_lr or set train.clip_grad_norm, and resume "
                "from the last checkpoint"
            )

    def applied(self, state: TrainState) -> None:
        state.skipped_in_row = 0
