"""A fifth objective, written only to show that registering one is all it takes for the shared
objective tests (test_contract.py) to run against it.

It is registered only while those tests run (see :func:`registered`), so that no other test
that lists the registry ever sees it.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch.nn.functional as F
from torch import Tensor

from multivic import register_objective
from multivic.objectives import Objective, ObjectiveOutput, check_option
from multivic.registry import OBJECTIVES

NAME = "toy_mse"


class ToyMSE(Objective):
    """The mean squared distance of paired rows, scaled: VICReg's invariance term alone (it
    collapses; a test objective only)."""

    title = "toy MSE"

    def __init__(self, scale: float = 1.0, check_finite: bool = True) -> None:
        super().__init__(check_finite=check_finite)
        check_option("scale", scale, scale > 0, "> 0")
        self.scale = scale

    def compute(self, z_a: Tensor, z_b: Tensor) -> ObjectiveOutput:
        mse = F.mse_loss(z_a, z_b)
        return ObjectiveOutput(self.scale * mse, {"mse": mse})


@contextmanager
def registered() -> Iterator[str]:
    """``toy_mse`` in the objective registry for the duration of the block."""
    register_objective(NAME)(ToyMSE)
    try:
        yield NAME
    finally:
        OBJECTIVES._entries.pop(NAME, None)
