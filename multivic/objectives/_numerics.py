"""Fast, accurate off-diagonal sums for VICReg's covariance term (and Barlow Twins' redundancy
term): the n×n Gram form, its float64 fallback, the per-process shards, and VICReg's fused
variance-and-covariance autograd Function.

The off-diagonal sum never needs the d×d matrix C = Zc^T Zc / (n-1) when n < d::

    Σ_{i≠j} C_ij² = ‖C‖_F² - Σ_j C_jj² = ‖Zc Zc^T‖_F² / (n-1)² - Σ_j var_j²

because ‖A^T A‖_F = ‖A A^T‖_F. The n×n Gram costs O(n²d) instead of O(nd²) and needs no d×d
matrix. When n ≥ d the d×d form is the cheaper one and is used instead (``form="auto"``).

The Gram form is a difference of two nearly equal numbers when the off-diagonal covariances
are small next to the variances: float32 keeps about 7 digits and the subtraction cancels
log10 κ of them, κ = ‖Zc Zc^T‖_F² / ((n-1)² Σ_{i≠j} C_ij²). No rearrangement of the n×n
products avoids it (the d×d diagonal has no n×n counterpart), so the float32 Gram is kept
where κ ≤ 10³ (error ≲ 10⁻³) and the Gram is recomputed in float64 where it is not. When n < d
the rank of C (at most n-1) bounds κ ≤ 1 + Σ var² / ((Σ var)²/(n-1) - Σ var²), so with
comparable variances κ stays near 1 and the float64 pass needs the variance concentrated in
fewer than about n dimensions, with those nearly uncorrelated.

Across processes the covariance sum is split: each process computes only its share of rows
of the Gram (or columns of C) and the partial sums are all-reduced with gradient, so that
work falls as 1/world_size.

Not a plug-in (the leading underscore keeps the registry from importing it as one).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from multivic.distributed import all_reduce_sum_with_grad, rank, world_size
from multivic.objectives._base import check_choice

CovarianceForm = Literal["auto", "gram", "covariance"]
COVARIANCE_FORMS: tuple[str, ...] = ("auto", "gram", "covariance")

# Largest cancellation κ = (Gram term) / (Gram term - Σ var²) a float32 Gram is trusted with.
# Its rounding errors are a few float32 ulps of the Gram term, so the off-diagonal sum comes
# out within about 1 to 10 × 2⁻²⁴·κ of float64: κ ≤ 10³ keeps it within about 6·10⁻⁴.
# Beyond that, float64.
GRAM_MAX_CANCELLATION = 1e3


def resolve_form(form: str, n: int, d: int) -> str:
    """ "gram" or "covariance": ``form`` itself, or for "auto" the cheaper one for an [n, d]
    batch (the Gram when n < d). ValueError for an unknown name."""
    check_choice("covariance_form", form, COVARIANCE_FORMS)
    if form == "auto":
        return "gram" if n < d else "covariance"
    return form


def variance_and_off_diagonal(
    z: Tensor, gamma: float, eps: float, form: str, sharded: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """One branch's (v, off, std) from its whole batch ``z`` [n, d]: the variance hinge
    v = mean_j relu(γ - std_j), off = Σ_{i≠j} C_ij² (scalars with gradient) and the detached
    per-dimension std [d]. ``form``: "gram" or "covariance" (see :func:`resolve_form`).

    One process (``sharded`` false) takes :class:`FusedVarianceCovariance`'s hand-written
    backward; with several, each computes its share of ``off`` with plain autograd.
    """
    if not sharded:
        return FusedVarianceCovariance.apply(z, gamma, eps, form)
    zc = z - z.mean(dim=0)
    var = column_variance(zc)
    std = torch.sqrt(var + eps)
    v = F.relu(gamma - std).mean()
    return v, sharded_off_diagonal_sum_sq(zc, var, form), std.detach()


class FusedVarianceCovariance(torch.autograd.Function):
    """One branch's variance hinge and off-diagonal sum on one process, with a hand-written backward.

    Input z [n, d]. Outputs: v = mean_j relu(γ - std_j), off = Σ_{i≠j} C_ij², and std [d]
    (not differentiable, for monitoring). With M the smaller Gram (Zc Zc^T when n < d, else
    Zc^T Zc with its diagonal zeroed, as the released code's off-diagonal mask does)::

        ∂off/∂Zc = 4/(n-1)² · (M Zc | Zc M) - 4/(n-1) · Zc · diag(var)   (the first form only)
        ∂v/∂Zc   = Zc · diag(-[γ > std_j] / (d (n-1) std_j))

    Both are linear in the rows of Zc, whose columns sum to zero, so they are already
    orthogonal to the centring and are the gradient with respect to z itself. Autograd would
    spend two Gram-sized products and about forty elementwise passes here; this spends one
    product and three passes.

    In the Gram form, ``off`` is recomputed from a float64 Gram when float32 would cancel too
    many digits (see the module docstring). The backward keeps the float32 M: its difference,
    M Zc - (n-1) Zc diag(var) = Zc (C - diag C)(n-1), cancels only about √κ, not κ.
    """

    @staticmethod
    def forward(ctx, z: Tensor, gamma: float, eps: float, form: str):  # type: ignore[override]
        n, d = z.shape
        zc = z - z.mean(dim=0)
        var = column_variance(zc)
        std = (var + eps).sqrt_()
        v = F.relu(gamma - std).mean()
        if form == "gram":
            m = zc @ zc.T
            terms = gram_terms(m, var, n)
            if cancels_too_much(terms, zc.dtype):
                terms = gram_shard_terms_float64(zc, shard=0, shards=1)
            off = gram_difference(terms).to(zc.dtype)
        else:
            m = zc.T @ zc
            m.diagonal().zero_()
            off = m.pow(2).sum() / (n - 1) ** 2
        ctx.save_for_backward(zc, m, var, std)
        ctx.gamma, ctx.form = gamma, form
        ctx.mark_non_differentiable(std)
        return v, off, std

    @staticmethod
    def backward(ctx, grad_v: Tensor, grad_off: Tensor, _grad_std: Tensor):  # type: ignore[override]
        zc, m, var, std = ctx.saved_tensors
        n, d = zc.shape
        # Per-column scale of Zc from the variance hinge (and, in the Gram form, from Σ var²).
        col = (std < ctx.gamma).to(zc.dtype).div_(std).mul_(-grad_v / (d * (n - 1)))
        if ctx.form == "gram":
            col = col - var * (4.0 * grad_off / (n - 1))
            product = (m, zc)
        else:
            product = (zc, m)
        grad = torch.addmm(zc * col, *product, alpha=4.0 * grad_off / (n - 1) ** 2)
        return grad, None, None, None


def column_variance(zc: Tensor) -> Tensor:
    """Unbiased variance of each column of the centred ``zc`` [n, d]; returns [d], in zc's dtype.

    One pass over zc (no [n, d] temporary), and out of place so that autograd can use it.
    """
    return torch.linalg.vector_norm(zc, dim=0).square() / (zc.shape[0] - 1)


def gram_terms(m: Tensor, diag: Tensor, n: int) -> Tensor:
    """The two sums the Gram form subtracts, as a [2] tensor: ‖m‖_F² / (n-1)² and Σ diag².

    ``m`` [r, n] holds r rows of the Gram Zc Zc^T and ``diag`` [c] part of C's diagonal (all
    of both on one process). Rounding (in m's entries and in the sums) leaves each term a few
    ulps off; their subtraction (:func:`gram_difference`) is exact where they nearly cancel,
    so the result is off by those few ulps of the terms: κ times as many of itself.
    """
    return torch.stack([m.pow(2).sum() / (n - 1) ** 2, diag.pow(2).sum()])


def gram_difference(terms: Tensor) -> Tensor:
    """Σ_{i≠j} C_ij² from :func:`gram_terms`' [2] output (summed over shards if sharded)."""
    return terms[0] - terms[1]


def gram_shard_terms(zc: Tensor, var: Tensor, shard: int, shards: int) -> Tensor:
    """:func:`gram_terms` of rows ``shard`` of the Gram of ``zc`` [n, d] and part ``shard`` of
    ``var`` [d]; [2]. The shards' terms add up to the whole batch's.

    Row block r of the Gram covers its rows of ‖·‖_F²; the diagonal of C is split evenly too.
    """
    rows = torch.tensor_split(zc, shards, dim=0)[shard]
    diag = torch.tensor_split(var, shards)[shard]
    return gram_terms(rows @ zc.T, diag, zc.shape[0])


def gram_shard_terms_float64(zc: Tensor, shard: int, shards: int) -> Tensor:
    """:func:`gram_shard_terms` with the Gram and the variances computed in float64, for when
    float32 would cancel too many digits."""
    zc64 = zc.double()
    return gram_shard_terms(zc64, column_variance(zc64), shard, shards)


def cancels_too_much(terms: Tensor, dtype: torch.dtype) -> bool:
    """Whether a Gram form computed in ``dtype`` lost too many digits to trust: κ > 10³.

    ``terms`` [2] holds the two sums the Gram form subtracts, for the whole batch (e.g.
    :func:`gram_terms`' output). Reads one scalar back to the host (a device sync). float64 is
    not redone: it carries 9 more digits than float32.
    """
    if dtype == torch.float64:
        return False
    gram, diag = terms.detach()
    return bool(GRAM_MAX_CANCELLATION * (gram - diag) < gram)


def sharded_off_diagonal_sum_sq(zc: Tensor, var: Tensor, form: str) -> Tensor:
    """Σ_{i≠j} C_ij² over all processes, from the gathered centred rows ``zc`` [n, d] and
    ``var`` [d] (C's diagonal), each process computing only its share; plain autograd (the
    gradient flows back through the all-reduce and the all-gather). Returns a scalar in zc's
    dtype.
    """
    shard, shards = rank(), world_size()
    if form != "gram":
        return all_reduce_sum_with_grad(covariance_shard_sum_sq(zc, shard, shards))
    # The two terms are summed over processes before subtracting: a process's own difference
    # is as large as the terms (its rows of the Gram and its part of the diagonal do not
    # match), so adding up the differences would round at the scale of the terms, while the
    # one subtraction of the totals is exact where they nearly cancel. Every process sees the
    # same totals, so all of them take the same branch.
    terms = all_reduce_sum_with_grad(gram_shard_terms(zc, var, shard, shards))
    if cancels_too_much(terms, zc.dtype):
        terms = all_reduce_sum_with_grad(gram_shard_terms_float64(zc, shard, shards))
    return gram_difference(terms).to(zc.dtype)


def covariance_shard_sum_sq(zc: Tensor, shard: int, shards: int) -> Tensor:
    """Columns ``shard`` of C's part of Σ_{i≠j} C_ij², from the centred ``zc`` [n, d]; the
    shards' sums add up to the whole."""
    n = zc.shape[0]
    # The d×d form, arranged as the released code does: zero the diagonal, sum the squares.
    # Subtracting Σ var² here instead would lose digits when d is small and n large.
    cols = torch.tensor_split(torch.arange(zc.shape[1], device=zc.device), shards)[shard]
    block = (zc.T @ zc[:, cols]) / (n - 1)  # [d, |cols|]
    off = torch.ones_like(block)
    off[cols, torch.arange(cols.numel(), device=zc.device)] = 0.0
    return (block * off).pow(2).sum()
