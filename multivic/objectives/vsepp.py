"""The VSE++ hinge loss (Faghri, Fleet, Kiros & Fidler, BMVC 2018), as the official code computes it.

With Z, Z' ∈ R^{n×d} the expander outputs of the whole batch (all processes) and
S_ij = cos(Z_i, Z'_j)::

    a_to_b:  for each row i of side a, the negatives j ≠ i of side b:  [α + S_ij - S_ii]_+
    b_to_a:  for each row j of side b, the negatives i ≠ j of side a:  [α + S_ij - S_jj]_+
    per row: the largest violation (max_violation, "VSE++") or the sum over negatives ("VSE0")
    loss = Σ_rows a_to_b + Σ_rows b_to_a  [+ μ·(v(Z) + v(Z'))/2]          margin α = 0.2

The official code (``ContrastiveLoss`` in fartashf/vsepp) *sums* over the rows of the batch and
adds the two directions; ``reduction="sum"`` (default) keeps that, so its learning rates
(Adam, 2e-4 at batch 128) carry over; ``reduction="mean"`` divides by n instead, which keeps
the loss's scale independent of the batch size. The optional last term is VICReg's variance
hinge on the raw embeddings (``variance_coeff`` μ, 0 by default).

Across processes, as InfoNCE: the embeddings are gathered with gradient and each process
computes only its own rows of the two similarity matrices against all columns. Process r
returns W·Σ_{its rows} (sum) or the mean over its rows (mean), so the W losses average to the
whole batch's loss and after DDP's averaging the gradients equal one process on the whole
batch. The reported loss and terms are this process's.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from multivic.objectives._base import Objective, ObjectiveOutput, check_choice, check_option
from multivic.objectives._contrastive import own_cosine_rows
from multivic.objectives._variance import add_variance, check_regulariser_options, std_stats
from multivic.registry import register_objective

Reduction = Literal["sum", "mean"]
REDUCTIONS: tuple[str, ...] = ("sum", "mean")


def hinge_rows(sim: Tensor, positives: Tensor, margin: float, max_violation: bool) -> Tensor:
    """Each row's hinge cost: ``sim`` [r, n] holds r rows' similarities to all n candidates,
    ``positives`` [r] the column of each row's pair. Returns [r]: the largest (max_violation)
    or the summed [margin + S_ij - S_ii]_+ over the negatives j."""
    at = torch.arange(sim.shape[0], device=sim.device)
    positive = sim[at, positives]
    cost = F.relu(margin + sim - positive[:, None])
    cost = cost.masked_fill(F.one_hot(positives, sim.shape[1]).bool(), 0.0)
    return cost.amax(dim=1) if max_violation else cost.sum(dim=1)


@register_objective("vsepp")
class VSEPPLoss(Objective):
    """VSE++ hinge on cosine similarities, both directions, hardest negatives or all of them.

    Args:
        margin: α, the margin of the hinge (0.2, the paper's).
        max_violation: only each row's hardest negative (VSE++, the paper's); false sums over
            all negatives (VSE0).
        reduction: "sum" over the rows of the batch, as the official code (default), or "mean".
        variance_coeff: μ of VICReg's variance term added as a regulariser, (v(Z) + v(Z'))/2
            on the raw embeddings of the whole batch (0: off).
        gamma, eps: γ and ε of that variance term (1 and 1e-4); γ also sets ``std_below_gamma``.
        gather: with several processes, contrast against the rows of all (gathered with gradient).
        check_finite: raise a clear error when the loss holds NaN or Inf (one host read).

    ``forward(z_a, z_b)`` returns an :class:`~multivic.objectives.ObjectiveOutput` with terms
    ``a_to_b`` and ``b_to_a`` (this process's share, reduced as the loss is; ``variance`` too
    when μ > 0) and per-branch std statistics of the raw embeddings.
    """

    title = "VSE++"
    rows_needed_for = "(a pair needs a negative)"

    def __init__(
        self,
        margin: float = 0.2,
        max_violation: bool = True,
        reduction: Reduction = "sum",
        variance_coeff: float = 0.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        gather: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__(gather=gather, check_finite=check_finite)
        check_option("margin", margin, margin >= 0, ">= 0 (the paper's is 0.2)")
        check_choice("reduction", reduction, REDUCTIONS)
        check_regulariser_options(variance_coeff, gamma, eps)
        self.margin = margin
        self.max_violation = max_violation
        self.reduction = reduction
        self.variance_coeff = variance_coeff
        self.gamma = gamma
        self.eps = eps

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, max_violation={self.max_violation}, reduction={self.reduction!r}, "
            f"variance_coeff={self.variance_coeff}"
        )

    def compute(self, z_a: Tensor, z_b: Tensor) -> ObjectiveOutput:
        n_local = z_a.shape[0]
        z_a, z_b, shards = self.gather_batch(z_a, z_b)
        self.check_rows(z_a.shape[0])
        sim_ab, sim_ba, labels = own_cosine_rows(z_a, z_b, n_local, shards)
        # Mean over processes of this factor times the local sum is the whole batch's sum / mean.
        factor = shards if self.reduction == "sum" else 1.0 / n_local
        a_to_b = factor * hinge_rows(sim_ab, labels, self.margin, self.max_violation).sum()
        b_to_a = factor * hinge_rows(sim_ba, labels, self.margin, self.max_violation).sum()
        loss, terms = add_variance(
            a_to_b + b_to_a, {"a_to_b": a_to_b, "b_to_a": b_to_a}, z_a, z_b, self.variance_coeff, self.gamma, self.eps
        )
        return ObjectiveOutput(loss, terms, std_stats(z_a, z_b, self.gamma, self.eps))
