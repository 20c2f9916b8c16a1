"""Evaluation protocols on frozen features: linear probe, k-NN, collapse statistics."""

from multivic.evaluation.collapse import embedding_std_stats
from multivic.evaluation.knn import knn_classify
from multivic.evaluation.linear_probe import linear_probe

__all__ = ["embedding_std_stats", "knn_classify", "linear_probe"]
