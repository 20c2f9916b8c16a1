"""multivic: VICReg joint-embedding self-supervised learning with any two encoders.

The public API::

    from multivic import VICRegLoss, JointEmbedding, build_branch, register_encoder
"""

from multivic.branch import Branch, JointEmbedding, build_branch
from multivic.data.formats import DataFormat
from multivic.errors import ConfigError, DataError, MultivicError, RegistryError, RunDirError
from multivic.evaluation.retrieval import retrieval_recall
from multivic.expander import Expander, parse_expander_spec
from multivic.export import load_branch
from multivic.modalities import Modality
from multivic.objectives import Objective, ObjectiveOutput, VICRegLoss, covariance_loss, invariance_loss, variance_loss
from multivic.registry import (
    create_encoder,
    list_encoders,
    register_encoder,
    register_format,
    register_modality,
    register_objective,
)
from multivic.version import __version__ as __version__

__all__ = [
    "Branch",
    "DataFormat",
    "Modality",
    "Objective",
    "ObjectiveOutput",
    "ConfigError",
    "DataError",
    "Expander",
    "JointEmbedding",
    "MultivicError",
    "RegistryError",
    "RunDirError",
    "VICRegLoss",
    "build_branch",
    "covariance_loss",
    "create_encoder",
    "invariance_loss",
    "list_encoders",
    "load_branch",
    "parse_expander_spec",
    "register_encoder",
    "register_format",
    "register_modality",
    "register_objective",
    "retrieval_recall",
    "variance_loss",
]
