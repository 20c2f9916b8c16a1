"""VICReg's variance hinge and the per-dimension std, which every objective uses: VICReg as
its variance term, the others as an optional regulariser (the VICReg paper adds it to other
methods), and all of them for their ``std_*`` statistics.

Not a plug-in (the leading underscore keeps the registry from importing it as one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from multivic.objectives._base import check_option


def per_dimension_std(z: Tensor, eps: float = 1e-4) -> Tensor:
    """sqrt(unbiased variance + eps) of each column of ``z`` [n, d]; returns [d]."""
    return torch.sqrt(z.var(dim=0, unbiased=True) + eps)


def variance_loss(z: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Hinge on the per-dimension standard deviation: mean_j relu(γ - sqrt(var_j + ε)).

    Usable on its own as a collapse regulariser (the paper adds it to BYOL and SimSiam).

    Args:
        z: [n, d] embeddings, n ≥ 2.
    Returns:
        A scalar.
    """
    return F.relu(gamma - per_dimension_std(z, eps)).mean()


def variance_regulariser(z_a: Tensor, z_b: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """VICReg's variance term of both branches [n, d], halved as the released code does:
    (v(Z_a) + v(Z_b)) / 2 with v = :func:`variance_loss`.

    Give it the gathered batch (every process then computes the same value)."""
    return (variance_loss(z_a, gamma, eps) + variance_loss(z_b, gamma, eps)) / 2


def check_variance_options(gamma: float, eps: float) -> None:
    """γ and ε of the variance hinge, as every objective checks them."""
    check_option("gamma", gamma, gamma > 0, "> 0 (the target std of each dimension, 1 in VICReg)")
    check_option("eps", eps, eps > 0, "> 0 (it keeps sqrt differentiable at 0)")


def check_regulariser_options(variance_coeff: float, gamma: float, eps: float) -> None:
    """The options of the variance regulariser of the objectives other than VICReg."""
    check_option("variance_coeff", variance_coeff, variance_coeff >= 0, ">= 0 (0 turns the variance regulariser off)")
    check_variance_options(gamma, eps)


def add_variance(
    loss: Tensor, terms: dict[str, Tensor], z_a: Tensor, z_b: Tensor, coeff: float, gamma: float, eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """``loss + coeff·variance`` with the term "variance" added to ``terms`` when ``coeff`` > 0;
    unchanged otherwise. ``z_a``, ``z_b``: the gathered batch [n, d]."""
    if coeff == 0:
        return loss, terms
    variance = variance_regulariser(z_a, z_b, gamma, eps)
    return loss + coeff * variance, {**terms, "variance": variance}


def branch_std_stats(side: str, std: Tensor, gamma: float) -> dict[str, Tensor]:
    """``<side>/std_mean``, ``<side>/std_min`` and ``<side>/std_below_gamma`` (the fraction of
    dimensions whose std is under γ) of one branch's detached per-dimension std [d]."""
    return {
        f"{side}/std_mean": std.mean(),
        f"{side}/std_min": std.min(),
        f"{side}/std_below_gamma": (std < gamma).to(std.dtype).mean(),
    }


def std_stats(z_a: Tensor, z_b: Tensor, gamma: float, eps: float = 1e-4) -> dict[str, Tensor]:
    """:func:`branch_std_stats` of both branches [n, d], keyed "a/..." and "b/..."."""
    stats = {}
    with torch.no_grad():
        for side, z in (("a", z_a), ("b", z_b)):
            stats.update(branch_std_stats(side, per_dimension_std(z.detach(), eps), gamma))
    return stats
