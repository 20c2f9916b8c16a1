"""The VICReg loss (Bardes, Ponce & LeCun, ICLR 2022), as the authors' released code computes it.

With Z, Z' ∈ R^{n×d} the expander outputs of the two branches::

    invariance  s    = mean((Z - Z')²)                     local batch (F.mse_loss)
    for each of Z, Z' (n = rows of the whole batch, over all processes):
        Zc    = Z - column means
        var_j = Σ_i Zc_ij² / (n-1)
        v(Z)  = mean_j relu(γ - sqrt(var_j + ε))
        c(Z)  = Σ_{i≠j} C_ij² / d,   C = Zc^T Zc / (n-1)
    variance    = (v(Z) + v(Z')) / 2     "released" convention (default)
                =  v(Z) + v(Z')          "paper" convention (Eq. 6 of the paper)
    covariance  = c(Z) + c(Z')
    loss        = λ·s + μ·variance + ν·covariance          λ = μ = 25, ν = 1

The three terms are the plain functions below. :class:`VICRegLoss` computes v and c of each
branch in one pass, with the n×n Gram form of c when n < d, a hand-written backward and a
float64 fallback where float32 would cancel too many digits: see
:mod:`multivic.objectives._numerics`.

Across processes, Z is gathered with gradient for the variance and covariance terms; the
invariance term stays local, as in the released code.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from multivic.objectives._base import Objective, ObjectiveOutput, check_choice, check_option
from multivic.objectives._numerics import (
    COVARIANCE_FORMS,
    CovarianceForm,
    FusedVarianceCovariance,
    resolve_form,
    variance_and_off_diagonal,
)
from multivic.objectives._variance import branch_std_stats, check_variance_options, variance_loss
from multivic.registry import register_objective

__all__ = [
    "COVARIANCE_FORMS",
    "VARIANCE_CONVENTIONS",
    "VICRegLoss",
    "covariance_loss",
    "invariance_loss",
    "variance_loss",
]

VarianceConvention = Literal["released", "paper"]
VARIANCE_CONVENTIONS: tuple[str, ...] = ("released", "paper")


# --------------------------------------------------------------------------------------------
# The terms as plain functions, on the whole batch of one process. variance_loss, the hinge
# v(Z), lives with the per-dimension std that every objective reports (_variance.py).
# --------------------------------------------------------------------------------------------


def invariance_loss(z_a: Tensor, z_b: Tensor) -> Tensor:
    """Mean squared distance between paired rows: mean over all n·d entries.

    Args:
        z_a, z_b: [n, d] embeddings of the two views.
    Returns:
        A scalar.
    """
    return F.mse_loss(z_a, z_b)


def covariance_loss(z: Tensor, form: CovarianceForm = "auto") -> Tensor:
    """Sum of squared off-diagonal covariances divided by d: Σ_{i≠j} C_ij² / d.

    Args:
        z: [n, d] embeddings, n ≥ 2.
        form: "gram" uses the n×n Gram of the centred rows, "covariance" the d×d matrix C,
            "auto" the cheaper of the two (Gram when n < d). Both give the same value.
    Returns:
        A scalar.
    """
    n, d = z.shape
    _, off, _ = FusedVarianceCovariance.apply(z, 1.0, 1e-4, resolve_form(form, n, d))
    return off / d


# --------------------------------------------------------------------------------------------
# The module.
# --------------------------------------------------------------------------------------------


@register_objective("vicreg")
class VICRegLoss(Objective):
    """Variance-Invariance-Covariance regularisation of two batches of embeddings.

    Args:
        sim_coeff: λ, weight of the invariance term (25 in the paper).
        std_coeff: μ, weight of the variance term (25); or a 2-item list [μ_a, μ_b], one per
            branch: the variance term is then (μ_a·v(Z) + μ_b·v(Z'))/2 ("released") or
            μ_a·v(Z) + μ_b·v(Z') ("paper"). The paper's COCO run weighs the two sides apart.
        cov_coeff: ν, weight of the covariance term (1); or [ν_a, ν_b]: ν_a·c(Z) + ν_b·c(Z').
        gamma: γ, the target standard deviation of each dimension (1).
        eps: ε inside the square root of the variance (1e-4).
        variance_convention: "released" halves the sum of the two branches' variance terms,
            as the authors' released code (and the published numbers) do; "paper" sums them,
            as Eq. 6 of the paper writes it. With the default μ = 25 the paper's form weighs
            the variance term twice as much as the code that produced the results.
        covariance_form: "auto" (Gram when n < d, d×d covariance otherwise), "gram" or
            "covariance". All give the same value up to rounding.
        gather: when torch.distributed runs more than one process, gather the embeddings of
            all processes (with gradient) for the variance and covariance terms.
        check_finite: raise a clear error when an input holds NaN or Inf. Costs one scalar
            device-to-host copy per call.

    ``forward(z_a, z_b)`` takes [n_local, d] tensors of any floating dtype and returns an
    :class:`~multivic.objectives.ObjectiveOutput` with terms ``invariance``, ``variance`` and
    ``covariance`` (unweighted, with gradient) and per-branch statistics ("a/..." and
    "b/..."): ``std_mean``, ``std_min``, ``std_below_gamma`` (the fraction of dimensions
    whose std is under γ) and ``cov_offdiag_rms``; with per-branch coefficients also each
    branch's unweighted ``variance`` and ``covariance``. The arithmetic runs in float32
    (float64 stays float64) with autocast disabled, whatever precision the model ran in.
    """

    title = "VICReg"
    rows_needed_for = "to estimate a variance"

    def __init__(
        self,
        sim_coeff: float = 25.0,
        std_coeff: float | list[float] = 25.0,
        cov_coeff: float | list[float] = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        variance_convention: VarianceConvention = "released",
        covariance_form: CovarianceForm = "auto",
        gather: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__(gather=gather, check_finite=check_finite)
        check_option("sim_coeff", sim_coeff, sim_coeff >= 0, ">= 0 (25 in the paper)")
        self.std_coeff = _coefficient("std_coeff", std_coeff)
        self.cov_coeff = _coefficient("cov_coeff", cov_coeff)
        check_variance_options(gamma, eps)
        check_choice("variance_convention", variance_convention, VARIANCE_CONVENTIONS)
        check_choice("covariance_form", covariance_form, COVARIANCE_FORMS)
        self.sim_coeff = sim_coeff
        self.gamma = gamma
        self.eps = eps
        self.variance_convention = variance_convention
        self.covariance_form = covariance_form

    def extra_repr(self) -> str:
        return (
            f"sim_coeff={self.sim_coeff}, std_coeff={self.std_coeff}, cov_coeff={self.cov_coeff}, "
            f"gamma={self.gamma}, eps={self.eps}, variance_convention={self.variance_convention!r}, "
            f"covariance_form={self.covariance_form!r}"
        )

    def compute(self, z_a: Tensor, z_b: Tensor) -> ObjectiveOutput:
        invariance = invariance_loss(z_a, z_b)

        z_a, z_b, shards = self.gather_batch(z_a, z_b)
        n, d = z_a.shape
        self.check_rows(n)
        form = resolve_form(self.covariance_form, n, d)

        v_terms, c_terms, stats = [], [], {}
        for side, z in (("a", z_a), ("b", z_b)):
            v, off, std = variance_and_off_diagonal(z, self.gamma, self.eps, form, sharded=shards > 1)
            v_terms.append(v)
            c_terms.append(off / d)
            with torch.no_grad():
                stats.update(branch_std_stats(side, std, self.gamma))
                stats[f"{side}/cov_offdiag_rms"] = torch.sqrt(off.detach().clamp_min(0) / max(d * (d - 1), 1))

        variance = v_terms[0] + v_terms[1]
        if self.variance_convention == "released":
            variance = variance / 2
        covariance = c_terms[0] + c_terms[1]
        if isinstance(self.std_coeff, tuple) or isinstance(self.cov_coeff, tuple):
            loss = self.sim_coeff * invariance + self._per_branch(v_terms, c_terms, stats)
        else:
            loss = self.sim_coeff * invariance + self.std_coeff * variance + self.cov_coeff * covariance
        return ObjectiveOutput(loss, {"invariance": invariance, "variance": variance, "covariance": covariance}, stats)

    def _per_branch(self, v_terms: list[Tensor], c_terms: list[Tensor], stats: dict[str, Tensor]) -> Tensor:
        """μ_a·v(Z) + μ_b·v(Z') (halved, "released") + ν_a·c(Z) + ν_b·c(Z'), with each branch's
        unweighted terms added to ``stats`` as "a/variance", "a/covariance", ..."""
        mu = self.std_coeff if isinstance(self.std_coeff, tuple) else (self.std_coeff,) * 2
        nu = self.cov_coeff if isinstance(self.cov_coeff, tuple) else (self.cov_coeff,) * 2
        variance = mu[0] * v_terms[0] + mu[1] * v_terms[1]
        if self.variance_convention == "released":
            variance = variance / 2
        for side, v, c in zip("ab", v_terms, c_terms):
            stats[f"{side}/variance"], stats[f"{side}/covariance"] = v.detach(), c.detach()
        return variance + nu[0] * c_terms[0] + nu[1] * c_terms[1]


def _coefficient(name: str, value: float | list[float]) -> float | tuple[float, float]:
    """A weight as given (a number), or a 2-item list of numbers as a tuple (one per branch);
    every weight >= 0."""

    def number(v: object) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    pair = isinstance(value, (list, tuple)) and len(value) == 2 and all(number(v) for v in value)
    check_option(name, value, number(value) or pair, "a number or a 2-item list [a_side, b_side] of numbers")
    weights = tuple(value) if pair else (value,)
    check_option(name, value, all(w >= 0 for w in weights), ">= 0 (0 turns its term off)")
    return (float(value[0]), float(value[1])) if pair else value
