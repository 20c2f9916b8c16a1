"""Evaluation protocols on frozen features: linear probe, k-NN, collapse statistics."""

from multivic.collapse import collapse_stats, rankme
from multivic.evaluation.knn import knn_classify
from multivic.evaluation.linear_probe import linear_probe

__all__ = ["collapse_stats", "knn_classify", "linear_probe", "rankme"]
