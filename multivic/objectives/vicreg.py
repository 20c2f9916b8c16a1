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

The off-diagonal sum never needs the d×d matrix C when n < d::

    Σ_{i≠j} C_ij² = ‖C‖_F² - Σ_j C_jj² = ‖Zc Zc^T‖_F² / (n-1)² - Σ_j var_j²

because ‖A^T A‖_F = ‖A A^T‖_F. The n×n Gram costs O(n²d) instead of O(nd²): at n=256,
d=8192 that is 32× fewer multiply-adds and no 256 MB matrix. When n ≥ d the d×d form is the
cheaper one and is used instead (``covariance_form="auto"``).

The Gram form is a difference of two nearly equal numbers when the off-diagonal covariances
are small next to the variances: float32 keeps about 7 digits and the subtraction cancels
log10 κ of them, κ = ‖Zc Zc^T‖_F² / ((n-1)² Σ_{i≠j} C_ij²). No rearrangement of the n×n
products avoids it (the d×d diagonal has no n×n counterpart), so the float32 Gram is kept
where κ ≤ 10³ (error ≲ 10⁻³) and the Gram is recomputed in float64 where it is not. When n < d
the rank of C (at most n-1) bounds κ ≤ 1 + Σ var² / ((Σ var)²/(n-1) - Σ var²), so with
comparable variances κ stays near 1 and the float64 pass needs the variance concentrated in
fewer than about n dimensions, with those nearly uncorrelated.

Across processes, Z is gathered with gradient for the variance and covariance terms; the
invariance term stays local, as in the released code. The covariance sum is split: each
process computes only its share of rows of the Gram (or columns of C) and the partial sums
are all-reduced, so that work falls as 1/world_size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multivic.distributed import all_reduce_sum_with_grad, gather_with_grad, rank, world_size
from multivic.errors import NonFiniteLossError
from multivic.registry import register_objective

VarianceConvention = Literal["released", "paper"]
CovarianceForm = Literal["auto", "gram", "covariance"]
VARIANCE_CONVENTIONS: tuple[str, ...] = ("released", "paper")
COVARIANCE_FORMS: tuple[str, ...] = ("auto", "gram", "covariance")


# --------------------------------------------------------------------------------------------
# The terms as plain functions, on the whole batch of one process.
# --------------------------------------------------------------------------------------------


def invariance_loss(z_a: Tensor, z_b: Tensor) -> Tensor:
    """Mean squared distance between paired rows: mean over all n·d entries.

    Args:
        z_a, z_b: [n, d] embeddings of the two views.
    Returns:
        A scalar.
    """
    return F.mse_loss(z_a, z_b)


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
    _, off, _ = _FusedVarianceCovariance.apply(z, 1.0, 1e-4, _resolve_form(form, n, d))
    return off / d


# --------------------------------------------------------------------------------------------
# The off-diagonal sum, in either form, optionally split into shards across processes.
# --------------------------------------------------------------------------------------------


def _resolve_form(form: str, n: int, d: int) -> str:
    if form not in COVARIANCE_FORMS:
        raise ValueError(f"covariance_form must be one of {COVARIANCE_FORMS}; got {form!r}")
    if form == "auto":
        return "gram" if n < d else "covariance"
    return form


class _FusedVarianceCovariance(torch.autograd.Function):
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
        var = _column_variance(zc)
        std = (var + eps).sqrt_()
        v = F.relu(gamma - std).mean()
        if form == "gram":
            m = zc @ zc.T
            terms = _gram_terms(m, var, n)
            if _cancels_too_much(terms, zc.dtype):
                terms = _gram_shard_terms_float64(zc, shard=0, shards=1)
            off = _gram_difference(terms).to(zc.dtype)
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


# Largest cancellation κ = (Gram term) / (Gram term - Σ var²) a float32 Gram is trusted with.
# Its rounding errors are a few float32 ulps of the Gram term: the off-diagonal sum comes out
# within 1 to 10 × 2⁻²⁴·κ of float64 (measured, n and d from 256 to 8192), so κ ≤ 10³ keeps
# it within about 6·10⁻⁴. Beyond that, float64.
GRAM_MAX_CANCELLATION = 1e3


def _column_variance(zc: Tensor) -> Tensor:
    """Unbiased variance of each column of the centred ``zc`` [n, d]; returns [d], in zc's dtype.

    One pass over zc (no [n, d] temporary), and out of place so that autograd can use it.
    """
    return torch.linalg.vector_norm(zc, dim=0).square() / (zc.shape[0] - 1)


def _gram_terms(m: Tensor, diag: Tensor, n: int) -> Tensor:
    """The two sums the Gram form subtracts, as a [2] tensor: ‖m‖_F² / (n-1)² and Σ diag².

    ``m`` [r, n] holds r rows of the Gram Zc Zc^T and ``diag`` [c] part of C's diagonal (all
    of both on one process). Rounding (in m's entries and in the sums) leaves each term a few
    ulps off; their subtraction (:func:`_gram_difference`) is exact where they nearly cancel,
    so the result is off by those few ulps of the terms: κ times as many of itself.
    """
    return torch.stack([m.pow(2).sum() / (n - 1) ** 2, diag.pow(2).sum()])


def _gram_difference(terms: Tensor) -> Tensor:
    """Σ_{i≠j} C_ij² from :func:`_gram_terms`' [2] output (summed over shards if sharded)."""
    return terms[0] - terms[1]


def _gram_shard_terms(zc: Tensor, var: Tensor, shard: int, shards: int) -> Tensor:
    """:func:`_gram_terms` of rows ``shard`` of the Gram of ``zc`` [n, d] and part ``shard`` of
    ``var`` [d]; [2]. The shards' terms add up to the whole batch's.

    Row block r of the Gram covers its rows of ‖·‖_F²; the diagonal of C is split evenly too.
    """
    rows = torch.tensor_split(zc, shards, dim=0)[shard]
    diag = torch.tensor_split(var, shards)[shard]
    return _gram_terms(rows @ zc.T, diag, zc.shape[0])


def _gram_shard_terms_float64(zc: Tensor, shard: int, shards: int) -> Tensor:
    """:func:`_gram_shard_terms` with the Gram and the variances computed in float64, for when
    float32 would cancel too many digits. Costs about twice the float32 Gram on CPU."""
    zc64 = zc.double()
    return _gram_shard_terms(zc64, _column_variance(zc64), shard, shards)


def _cancels_too_much(terms: Tensor, dtype: torch.dtype) -> bool:
    """Whether a Gram form computed in ``dtype`` lost too many digits to trust: κ > 10³.

    ``terms`` is :func:`_gram_terms`' output for the whole batch. Reads one scalar back to the
    host (a device sync). float64 is not redone: it carries 9 more digits than float32.
    """
    if dtype == torch.float64:
        return False
    gram, diag = terms.detach()
    return bool(GRAM_MAX_CANCELLATION * (gram - diag) < gram)


def _sharded_off_diagonal_sum_sq(zc: Tensor, var: Tensor, form: str) -> Tensor:
    """Σ_{i≠j} C_ij² over all processes, from the gathered centred rows ``zc`` [n, d] and
    ``var`` [d] (C's diagonal), each process computing only its share; plain autograd (the
    gradient flows back through the all-reduce and the all-gather). One process uses
    :class:`_FusedVarianceCovariance` instead. Returns a scalar in zc's dtype.
    """
    shard, shards = rank(), world_size()
    if form != "gram":
        return all_reduce_sum_with_grad(_covariance_shard_sum_sq(zc, shard, shards))
    # The two terms are summed over processes before subtracting: a process's own difference
    # is as large as the terms (its rows of the Gram and its part of the diagonal do not
    # match), so adding up the differences would round at the scale of the terms, while the
    # one subtraction of the totals is exact where they nearly cancel. Every process sees the
    # same totals, so all of them take the same branch.
    terms = all_reduce_sum_with_grad(_gram_shard_terms(zc, var, shard, shards))
    if _cancels_too_much(terms, zc.dtype):
        terms = all_reduce_sum_with_grad(_gram_shard_terms_float64(zc, shard, shards))
    return _gram_difference(terms).to(zc.dtype)


def _covariance_shard_sum_sq(zc: Tensor, shard: int, shards: int) -> Tensor:
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


# --------------------------------------------------------------------------------------------
# The module.
# --------------------------------------------------------------------------------------------


@dataclass
class VICRegOutput:
    """What :class:`VICRegLoss` returns. All tensors are scalars in float32 (or wider).

    ``loss`` carries the gradient; ``invariance``, ``variance`` and ``covariance`` are the
    unweighted terms (also with gradient). ``stats`` holds detached monitoring numbers per
    branch ("a" and "b"): ``std_mean``, ``std_min``, ``std_below_gamma`` (fraction of
    dimensions whose std is under γ) and ``cov_offdiag_rms``.
    """

    loss: Tensor
    invariance: Tensor
    variance: Tensor
    covariance: Tensor
    stats: dict[str, Tensor] = field(default_factory=dict)

    @property
    def terms(self) -> dict[str, Tensor]:
        """The unweighted terms by name (the objective-output protocol)."""
        return {"invariance": self.invariance, "variance": self.variance, "covariance": self.covariance}

    def metrics(self) -> dict[str, Tensor]:
        """Flat, detached scalars for logging: the loss, its terms and the statistics."""
        out = {
            "loss": self.loss.detach(),
            "invariance": self.invariance.detach(),
            "variance": self.variance.detach(),
            "covariance": self.covariance.detach(),
        }
        out.update(self.stats)
        return out


@register_objective("vicreg")
class VICRegLoss(nn.Module):
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

    ``forward(z_a, z_b)`` takes [n_local, d] tensors of any floating dtype and returns a
    :class:`VICRegOutput`. The arithmetic runs in float32 (float64 stays float64) with
    autocast disabled, whatever precision the model ran in.
    """

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
        super().__init__()
        if variance_convention not in VARIANCE_CONVENTIONS:
            raise ValueError(
                f"variance_convention must be one of {VARIANCE_CONVENTIONS}; got {variance_convention!r}"
            )
        _resolve_form(covariance_form, 1, 1)  # validates the name
        if eps <= 0:
            raise ValueError(f"eps must be > 0 (it keeps sqrt differentiable at 0); got {eps}")
        self.sim_coeff = sim_coeff
        self.std_coeff = _coefficient("std_coeff", std_coeff)
        self.cov_coeff = _coefficient("cov_coeff", cov_coeff)
        self.gamma = gamma
        self.eps = eps
        self.variance_convention = variance_convention
        self.covariance_form = covariance_form
        self.gather = gather
        self.check_finite = check_finite

    def extra_repr(self) -> str:
        return (
            f"sim_coeff={self.sim_coeff}, std_coeff={self.std_coeff}, cov_coeff={self.cov_coeff}, "
            f"gamma={self.gamma}, eps={self.eps}, variance_convention={self.variance_convention!r}, "
            f"covariance_form={self.covariance_form!r}"
        )

    def forward(self, z_a: Tensor, z_b: Tensor) -> VICRegOutput:
        _check_shapes(z_a, z_b)
        device_type = z_a.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            dtype = torch.promote_types(z_a.dtype, torch.float32)
            z_a, z_b = z_a.to(dtype), z_b.to(dtype)
            out = self._compute(z_a, z_b)
        if self.check_finite and not bool(torch.isfinite(out.loss)):
            _raise_non_finite(z_a, z_b, out)
        return out

    def _compute(self, z_a: Tensor, z_b: Tensor) -> VICRegOutput:
        invariance = invariance_loss(z_a, z_b)

        shards = world_size() if self.gather else 1
        if shards > 1:
            z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)
        n, d = z_a.shape
        if n < 2:
            raise ValueError(
                f"VICReg needs at least 2 rows in the whole batch to estimate a variance; got n={n}"
            )
        form = _resolve_form(self.covariance_form, n, d)

        v_terms, c_terms, stats = [], [], {}
        for side, z in (("a", z_a), ("b", z_b)):
            if shards == 1:
                v, off, std = _FusedVarianceCovariance.apply(z, self.gamma, self.eps, form)
            else:
                zc = z - z.mean(dim=0)
                var = _column_variance(zc)
                std = torch.sqrt(var + self.eps)
                v = F.relu(self.gamma - std).mean()
                off = _sharded_off_diagonal_sum_sq(zc, var, form)
            v_terms.append(v)
            c_terms.append(off / d)
            with torch.no_grad():
                std = std.detach()
                stats[f"{side}/std_mean"] = std.mean()
                stats[f"{side}/std_min"] = std.min()
                stats[f"{side}/std_below_gamma"] = (std < self.gamma).to(std.dtype).mean()
                stats[f"{side}/cov_offdiag_rms"] = torch.sqrt(off.detach().clamp_min(0) / max(d * (d - 1), 1))

        variance = v_terms[0] + v_terms[1]
        if self.variance_convention == "released":
            variance = variance / 2
        covariance = c_terms[0] + c_terms[1]
        if isinstance(self.std_coeff, tuple) or isinstance(self.cov_coeff, tuple):
            loss = self.sim_coeff * invariance + self._per_branch(v_terms, c_terms, stats)
        else:
            loss = self.sim_coeff * invariance + self.std_coeff * variance + self.cov_coeff * covariance
        return VICRegOutput(loss, invariance, variance, covariance, stats)

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
    """A coefficient as given (a number), or a 2-item list of numbers as a tuple (one per branch)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return (float(value[0]), float(value[1]))
    raise ValueError(f"{name} must be a number or a 2-item list [a_side, b_side] of numbers; got {value!r}")


def _check_shapes(z_a: Tensor, z_b: Tensor) -> None:
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        if z.dim() != 2:
            raise ValueError(
                f"VICRegLoss expects 2-D embeddings [batch, dim]; got {name} with shape {tuple(z.shape)}"
            )
        if not z.is_floating_point():
            raise ValueError(f"VICRegLoss expects floating-point embeddings; got {name} of dtype {z.dtype}")
    if z_a.shape != z_b.shape:
        raise ValueError(
            f"z_a and z_b must have the same shape; got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if world_size() == 1 and z_a.shape[0] < 2:
        raise ValueError(
            f"VICReg needs at least 2 rows in the whole batch to estimate a variance; got n={z_a.shape[0]}"
        )


def _raise_non_finite(z_a: Tensor, z_b: Tensor, out: VICRegOutput) -> None:
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        bad = ~torch.isfinite(z)
        if bool(bad.any()):
            rows = bad.any(dim=1).nonzero().flatten()[:5].tolist()
            raise NonFiniteLossError(
                f"{name} holds {int(bad.sum())} non-finite values (NaN or Inf), first in rows {rows}: "
                "the model diverged or its input is corrupt"
            )
    terms = ", ".join(
        f"{name}={float(value)}" for name, value in
        (("invariance", out.invariance), ("variance", out.variance), ("covariance", out.covariance))
        if not bool(torch.isfinite(value))
    )
    raise NonFiniteLossError(
        f"the VICReg loss is not finite ({out.loss.item()}; {terms or 'the weighted sum overflows'}) although this "
        "process's inputs are finite: values overflow float32, or another process holds the bad rows"
    )
