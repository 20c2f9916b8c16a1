"""Joint-embedding objectives, a registry extension point.

An objective is an ``nn.Module`` whose ``forward(z_a, z_b)`` takes the two branches' outputs
[n, d] and returns an :class:`ObjectiveOutput`: the scalar ``loss`` with its graph, the named
unweighted ``terms`` and ``metrics()`` (detached scalars for logging). It raises
:class:`multivic.errors.NonFiniteLossError` when the loss or its inputs are not finite, which
the trainer handles for every objective alike. Register one with
``@multivic.register_objective("name")`` in a module of its own; a recipe then says
``loss: {name: <name>, ...its keyword arguments}``. Parameters of an objective (a learnable
temperature, say) are trained with the model.

Every built-in objective subclasses :class:`Objective`, which does the input checks, the
float32 section and the non-finite error once for all, and checks its options with
:func:`check_option`; a new objective can do the same and write only ``compute``.

Layout: one module per objective (``vicreg.py``, ``barlow_twins.py``, ``infonce.py``,
``vsepp.py``); the shared parts in modules whose leading underscore keeps the registry from
importing them as plug-ins: ``_base.py`` (the base class and result type), ``_variance.py``
(VICReg's variance hinge and the std statistics every objective reports), ``_numerics.py`` (the
fast, accurate covariance sums of VICReg and Barlow Twins) and ``_contrastive.py`` (the
similarity rows of InfoNCE and VSE++).
"""

from multivic.errors import NonFiniteLossError
from multivic.objectives._base import Objective, ObjectiveOutput, check_choice, check_option
from multivic.objectives._variance import variance_regulariser
from multivic.objectives.barlow_twins import BarlowTwinsLoss
from multivic.objectives.infonce import InfoNCELoss
from multivic.objectives.vicreg import (
    VARIANCE_CONVENTIONS,
    VICRegLoss,
    covariance_loss,
    invariance_loss,
    variance_loss,
)
from multivic.objectives.vsepp import VSEPPLoss

__all__ = [
    "VARIANCE_CONVENTIONS",
    "BarlowTwinsLoss",
    "InfoNCELoss",
    "NonFiniteLossError",
    "Objective",
    "ObjectiveOutput",
    "VICRegLoss",
    "VSEPPLoss",
    "check_choice",
    "check_option",
    "covariance_loss",
    "invariance_loss",
    "variance_loss",
    "variance_regulariser",
]
