"""Joint-embedding objectives, a registry extension point.

An objective is an ``nn.Module`` whose ``forward(z_a, z_b)`` takes the two branches' outputs
[n, d] and returns an :class:`ObjectiveOutput`: the scalar ``loss`` with its graph, the named
unweighted ``terms`` and ``metrics()`` (detached scalars for logging). It raises
:class:`multivic.errors.NonFiniteLossError` when the loss or its inputs are not finite, which
the trainer handles for every objective alike. Register one with
``@multivic.register_objective("name")`` in a module of its own; a recipe then says
``loss: {name: <name>, ...its keyword arguments}``. Parameters of an objective (a learnable
temperature, say) are trained with the model.
"""

from typing import Mapping, Protocol, runtime_checkable

from torch import Tensor

from multivic.errors import NonFiniteLossError
from multivic.objectives._common import ObjectiveResult, variance_regulariser
from multivic.objectives.barlow_twins import BarlowTwinsLoss
from multivic.objectives.infonce import InfoNCELoss
from multivic.objectives.vicreg import (
    VARIANCE_CONVENTIONS,
    VICRegLoss,
    VICRegOutput,
    covariance_loss,
    invariance_loss,
    variance_loss,
)
from multivic.objectives.vsepp import VSEPPLoss


@runtime_checkable
class ObjectiveOutput(Protocol):
    """What an objective's forward returns."""

    loss: Tensor

    @property
    def terms(self) -> Mapping[str, Tensor]: ...

    def metrics(self) -> dict[str, Tensor]: ...


__all__ = [
    "VARIANCE_CONVENTIONS",
    "BarlowTwinsLoss",
    "InfoNCELoss",
    "NonFiniteLossError",
    "ObjectiveOutput",
    "ObjectiveResult",
    "VICRegLoss",
    "VICRegOutput",
    "VSEPPLoss",
    "covariance_loss",
    "invariance_loss",
    "variance_loss",
    "variance_regulariser",
]
