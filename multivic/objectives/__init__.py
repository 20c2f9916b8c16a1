"""Joint-embedding objectives."""

from multivic.errors import NonFiniteLossError
from multivic.objectives.vicreg import (
    VARIANCE_CONVENTIONS,
    VICRegLoss,
    VICRegOutput,
    covariance_loss,
    invariance_loss,
    variance_loss,
)

__all__ = [
    "VARIANCE_CONVENTIONS",
    "NonFiniteLossError",
    "VICRegLoss",
    "VICRegOutput",
    "covariance_loss",
    "invariance_loss",
    "variance_loss",
]
