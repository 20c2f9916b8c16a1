"""The classification protocols of one branch: linear probe, k-NN and embedding statistics."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from multivic.branch import Branch
from multivic.collapse import branch_collapse
from multivic.evaluation.features import extract_features
from multivic.evaluation.knn import knn_classify
from multivic.evaluation.linear_probe import linear_probe
from multivic.evaluation.result import EvalResult


def evaluate_classification(
    branch: Branch,
    train: Dataset,
    val: Dataset,
    num_classes: int,
    device: torch.device,
    *,
    batch_size: int,
    num_workers: int,
    knn_k: int,
    knn_temperature: float,
    linear_epochs: int,
    linear_lr: float,
    linear_weight_decay: float,
    max_train_samples: int | None,
    seed: int,
    skip_unreadable: bool,
    gamma: float,
    collate=None,
) -> EvalResult:
    """Metrics of ``branch`` named ``<branch>/<metric>``: linear_top1, linear_top5, knn_top1
    (percent, on val, trained on train); the collapse statistics of the expander output on val
    (rankme, std_mean, std_min, std_below_gamma for ``gamma``, corr_offdiag_rms, see
    multivic.collapse) and rankme_repr, the RankMe of the encoder output; the val
    split's spectra and per-dimension std as arrays (see :func:`branch_collapse`). The settings
    are the recipe's ``eval.*`` keys (no defaults here: the schema holds them)."""
    tr = extract_features(
        branch, train, device, batch_size, num_workers, max_train_samples, seed, collate, skip_unreadable
    )
    va = extract_features(
        branch, val, device, batch_size, num_workers, collate=collate, skip_unreadable=skip_unreadable
    )
    probe = linear_probe(
        tr.representations,
        tr.labels,
        va.representations,
        va.labels,
        num_classes,
        epochs=linear_epochs,
        lr=linear_lr,
        weight_decay=linear_weight_decay,
        seed=seed,
    )
    knn_pred = knn_classify(tr.representations, tr.labels, va.representations, num_classes, knn_k, knn_temperature)
    metrics, arrays = branch_collapse(branch.name, va.embeddings, va.representations, gamma)
    p = branch.name
    metrics.update(
        {
            f"{p}/linear_top1": probe["top1"],
            f"{p}/linear_top5": probe["top5"],
            f"{p}/knn_top1": 100.0 * (knn_pred == va.labels).float().mean().item(),
        }
    )
    return EvalResult(metrics, arrays)
