"""Joint-embedding objectives."""

from multivic.losses.vicreg import (
    VARIANCE_CONVENTIONS,
    NonFiniteLossError,
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
