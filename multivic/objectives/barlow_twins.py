"""Barlow Twins (Zbontar, Jing, Misra, LeCun & Deny, ICML 2021), as the authors' code computes it.

With Z, Z' ∈ R^{n×d} the expander outputs of the whole batch (all processes)::

    A  = (Z  - column means) / sqrt(biased column variance + ε_bn)      BatchNorm1d(affine=False)
    B  = (Z' - column means) / sqrt(biased column variance + ε_bn)      ε_bn = 1e-5
    C  = A^T B / n                                                      d×d cross-correlation
    on_diagonal  = Σ_j (1 - C_jj)²
    off_diagonal = Σ_{i≠j} C_ij²
    loss = scale · (on_diagonal + λ·off_diagonal) [+ μ·(v(Z) + v(Z'))/2]

λ (``lambda_offdiag``) is 5e-3 as in the paper (the code's default is 0.0051). ``scale`` is
``scale_loss`` (1 by default), times 1/d with ``scale_by_dim``. The official code's first
release multiplied the loss by ``--scale-loss 0.024`` (ImageNet, d = 8192); the authors later
said that matching their research code means a factor 196/d and dropped the option from the
code in favour of the learning rate. ``scale_loss=196, scale_by_dim=true`` is that 196/d at any
expander width; the default (1, false) is the current official code. The optional last term is
VICReg's variance hinge on the raw embeddings (``variance_coeff`` μ, 0 by default).

The off-diagonal sum never needs the d×d matrix when n < d::

    Σ_{i≠j} C_ij² = ‖C‖_F² - Σ_j C_jj²,   ‖C‖_F² = tr(B^T A A^T B) / n² = ⟨A A^T, B B^T⟩_F / n²

two n×n Grams, O(n²d) instead of O(nd²), and C's diagonal is Σ_i A_ij B_ij / n, O(nd).
``covariance_form="auto"`` takes the Gram form when n < d. As in VICReg, the subtraction is
checked for cancellation and redone in float64 beyond κ = 10³ (see multivic.objectives._numerics).

Across processes, Z and Z' are gathered with gradient and normalised over the whole batch (the
official code's SyncBatchNorm); each process computes only its share of the Gram rows (or of
C's columns) and of C's diagonal, and the partial sums are all-reduced with gradient, so every
process holds the whole batch's loss and the work falls as 1/world_size. (The official code
all-reduces C without gradient, which leaves the DDP-averaged gradient 1/world_size too small.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from multivic.distributed import all_reduce_sum_with_grad, rank
from multivic.objectives._base import Objective, ObjectiveOutput, check_choice, check_option
from multivic.objectives._numerics import COVARIANCE_FORMS, CovarianceForm, cancels_too_much, resolve_form
from multivic.objectives._variance import add_variance, check_regulariser_options, std_stats
from multivic.registry import register_objective

# --------------------------------------------------------------------------------------------
# The terms as plain functions, on the whole batch of one process.
# --------------------------------------------------------------------------------------------


def batch_normalise(z: Tensor, eps: float = 1e-5) -> Tensor:
    """Each column of ``z`` [n, d] centred and divided by sqrt(its biased variance + eps), as
    ``BatchNorm1d(d, affine=False)`` does in training mode."""
    zc = z - z.mean(dim=0)
    return zc / torch.sqrt(zc.pow(2).mean(dim=0) + eps)


def cross_correlation(z_a: Tensor, z_b: Tensor, eps: float = 1e-5) -> Tensor:
    """C = A^T B / n of the batch-normalised embeddings [n, d]; returns [d, d]."""
    a, b = batch_normalise(z_a, eps), batch_normalise(z_b, eps)
    return a.T @ b / z_a.shape[0]


def barlow_twins_terms(
    z_a: Tensor, z_b: Tensor, eps: float = 1e-5, form: CovarianceForm = "auto"
) -> tuple[Tensor, Tensor]:
    """(Σ_j (1 - C_jj)², Σ_{i≠j} C_ij²) of the batch [n, d] on one process.

    ``form``: "gram" (n×n Grams), "covariance" (the d×d matrix C) or "auto" (Gram when n < d).
    """
    n, d = z_a.shape
    a, b = batch_normalise(z_a, eps), batch_normalise(z_b, eps)
    on, off = _shard_sums(a, b, resolve_form(form, n, d), 0, 1)
    return on, off


# --------------------------------------------------------------------------------------------
# One process's share of the sums: rows of the Grams or columns of C, and part of C's diagonal.
# --------------------------------------------------------------------------------------------


def _shard_partials(a: Tensor, b: Tensor, form: str, shard: int, shards: int) -> Tensor:
    """Shard ``shard`` of ``shards``' partial sums, from the normalised batch ``a``, ``b`` [n, d].

    Gram form: [Σ_j (1 - C_jj)², ⟨A A^T, B B^T⟩ / n², Σ_j C_jj²] over its rows / columns.
    Covariance form: [Σ_j (1 - C_jj)², Σ_{i≠j} C_ij²] over its columns of C.
    The shards' partials add up to the whole batch's.
    """
    n, d = a.shape
    cols = torch.tensor_split(torch.arange(d, device=a.device), shards)[shard]
    if form == "gram":
        rows = torch.tensor_split(torch.arange(n, device=a.device), shards)[shard]
        gram = ((a[rows] @ a.T) * (b[rows] @ b.T)).sum() / n**2
        diag = (a[:, cols] * b[:, cols]).sum(dim=0) / n
        return torch.stack([(1 - diag).pow(2).sum(), gram, diag.pow(2).sum()])
    block = a.T @ b[:, cols] / n  # [d, |cols|]: columns `cols` of C
    at = torch.arange(cols.numel(), device=a.device)
    diag = block[cols, at]
    # Zero the diagonal rather than subtract Σ C_jj²: C_jj ≈ 1 dwarfs the off-diagonal entries.
    mask = torch.ones_like(block)
    mask[cols, at] = 0.0
    return torch.stack([(1 - diag).pow(2).sum(), (block * mask).pow(2).sum()])


def _shard_sums(a: Tensor, b: Tensor, form: str, shard: int, shards: int) -> tuple[Tensor, Tensor]:
    """(on_diagonal, off_diagonal) of the whole batch; each process computes its share and the
    partials are summed over processes (with gradient) before the Gram form's subtraction."""
    partial = _shard_partials(a, b, form, shard, shards)
    total = all_reduce_sum_with_grad(partial) if shards > 1 else partial
    if form != "gram":
        return total[0], total[1]
    if cancels_too_much(total[1:], a.dtype):
        # ‖C‖_F² and Σ C_jj² nearly cancel: redo both in float64 (see the _numerics module docstring).
        partial64 = _shard_partials(a.double(), b.double(), form, shard, shards)
        total64 = all_reduce_sum_with_grad(partial64) if shards > 1 else partial64
        return total[0], (total64[1] - total64[2]).to(a.dtype)
    return total[0], total[1] - total[2]


# --------------------------------------------------------------------------------------------
# The module.
# --------------------------------------------------------------------------------------------


@register_objective("barlow_twins")
class BarlowTwinsLoss(Objective):
    """Barlow Twins: drive the cross-correlation of the batch-normalised embeddings to identity.

    Args:
        lambda_offdiag: λ, weight of the off-diagonal (redundancy) term (5e-3, the paper's).
        scale_loss: a factor on the whole loss (1; the first official release used 0.024).
        scale_by_dim: also divide the loss by the embedding width d (``scale_loss=196`` and
            this give the authors' research-code scaling 196/d at any width).
        bn_eps: ε of the batch normalisation (1e-5, BatchNorm1d's).
        variance_coeff: μ of VICReg's variance term added as a regulariser, (v(Z) + v(Z'))/2
            on the raw embeddings of the whole batch (0: off).
        gamma, eps: γ and ε of that variance term (1 and 1e-4, VICReg's); γ also sets the
            ``std_below_gamma`` statistic.
        covariance_form: "auto" (Gram when n < d, d×d otherwise), "gram" or "covariance".
        gather: with several processes, gather the embeddings of all (with gradient).
        check_finite: raise a clear error when the loss holds NaN or Inf (one host read).

    ``forward(z_a, z_b)`` returns an :class:`~multivic.objectives.ObjectiveOutput` with terms
    ``on_diagonal`` and ``off_diagonal`` (unweighted; ``variance`` too when μ > 0) and
    per-branch std statistics of the raw embeddings. float32 arithmetic (float64 stays
    float64), autocast off.
    """

    title = "Barlow Twins"
    rows_needed_for = "to normalise over it"

    def __init__(
        self,
        lambda_offdiag: float = 5e-3,
        scale_loss: float = 1.0,
        scale_by_dim: bool = False,
        bn_eps: float = 1e-5,
        variance_coeff: float = 0.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        covariance_form: CovarianceForm = "auto",
        gather: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__(gather=gather, check_finite=check_finite)
        check_option("lambda_offdiag", lambda_offdiag, lambda_offdiag >= 0, ">= 0 (the paper's is 5e-3)")
        check_option("scale_loss", scale_loss, scale_loss > 0, "> 0 (1 is the official code's current value)")
        check_option("bn_eps", bn_eps, bn_eps > 0, "> 0 (BatchNorm1d's is 1e-5)")
        check_regulariser_options(variance_coeff, gamma, eps)
        check_choice("covariance_form", covariance_form, COVARIANCE_FORMS)
        self.lambda_offdiag = lambda_offdiag
        self.scale_loss = scale_loss
        self.scale_by_dim = scale_by_dim
        self.bn_eps = bn_eps
        self.variance_coeff = variance_coeff
        self.gamma = gamma
        self.eps = eps
        self.covariance_form = covariance_form

    def extra_repr(self) -> str:
        return (
            f"lambda_offdiag={self.lambda_offdiag}, scale_loss={self.scale_loss}, scale_by_dim={self.scale_by_dim}, "
            f"variance_coeff={self.variance_coeff}, covariance_form={self.covariance_form!r}"
        )

    def compute(self, z_a: Tensor, z_b: Tensor) -> ObjectiveOutput:
        z_a, z_b, shards = self.gather_batch(z_a, z_b)
        n, d = z_a.shape
        self.check_rows(n)
        form = resolve_form(self.covariance_form, n, d)
        a, b = batch_normalise(z_a, self.bn_eps), batch_normalise(z_b, self.bn_eps)
        on, off = _shard_sums(a, b, form, rank() if shards > 1 else 0, shards)
        scale = self.scale_loss / d if self.scale_by_dim else self.scale_loss
        loss = scale * (on + self.lambda_offdiag * off)
        loss, terms = add_variance(
            loss, {"on_diagonal": on, "off_diagonal": off}, z_a, z_b, self.variance_coeff, self.gamma, self.eps
        )
        return ObjectiveOutput(loss, terms, std_stats(z_a, z_b, self.gamma, self.eps))
