"""The symmetric InfoNCE loss of CLIP (Radford et al. 2021), with open_clip's local loss.

With Z, Z' ∈ R^{n×d} the expander outputs of the whole batch (all processes)::

    a_i = Z_i / ‖Z_i‖,  b_i = Z'_i / ‖Z'_i‖
    s   = min(exp(t), s_max)          t = log(1/τ): learnable or fixed; s_max = 100 as in CLIP
    a_to_b = mean_i  -log softmax_j (s · a_i·b_j)  at j = i
    b_to_a = mean_i  -log softmax_j (s · b_i·a_j)  at j = i
    loss   = (a_to_b + b_to_a) / 2  [+ μ·(v(Z) + v(Z'))/2]

τ starts at 0.07 (CLIP's initialisation) and is learnt by default; the clamp keeps the logit
scale s at or below 100 (CLIP clamps the parameter after each step; here the forward clamps, so
the parameter stops receiving gradient while clamped). The optional last term is VICReg's
variance hinge on the raw embeddings (``variance_coeff`` μ, 0 by default).

Across processes (open_clip's ``local_loss`` with ``gather_with_grad``): the embeddings are
gathered with gradient and each process computes only its own n/W rows of the two logit
matrices against all n columns, its rows' mean cross-entropies. The W processes' losses
average to the whole batch's loss, so after DDP's gradient averaging the gradients equal one
process on the whole batch, and the logits cost O(n²d/W) per process instead of O(n²d).
The reported loss and terms are this process's rows'.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from multivic.distributed import gather_with_grad, rank, world_size
from multivic.objectives._common import (
    ObjectiveResult,
    add_variance,
    check_rows,
    check_variance_options,
    guarded_forward,
    std_stats,
)
from multivic.registry import register_objective


def local_rows(n_local: int, device: torch.device, shards: int) -> tuple[slice, Tensor]:
    """This process's rows of the gathered batch and their positive columns (labels)."""
    start = rank() * n_local if shards > 1 else 0
    return slice(start, start + n_local), torch.arange(start, start + n_local, device=device)


def cosine_rows(z_a: Tensor, z_b: Tensor, rows: slice) -> tuple[Tensor, Tensor]:
    """Cosine similarities of rows ``rows`` of each side against all rows of the other:
    (a[rows] · b^T, b[rows] · a^T), each [|rows|, n], from the gathered raw embeddings."""
    a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    return a[rows] @ b.T, b[rows] @ a.T


def gathered_cosine_rows(z_a: Tensor, z_b: Tensor, gather: bool, name: str) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int]:
    """The common start of the contrastive objectives on this process's [n_local, d] rows:
    gather both sides with gradient (when ``gather`` and several processes), check the whole
    batch has a negative, and take this process's rows of the cosine similarities.

    Returns (z_a, z_b) gathered [n, d], sim_ab and sim_ba [n_local, n] (see :func:`cosine_rows`),
    the positive columns [n_local] and the number of shards.
    """
    n_local = z_a.shape[0]
    shards = world_size() if gather else 1
    if shards > 1:
        z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)
    check_rows(z_a.shape[0], name, "(a pair needs a negative)")
    rows, labels = local_rows(n_local, z_a.device, shards)
    sim_ab, sim_ba = cosine_rows(z_a, z_b, rows)
    return z_a, z_b, sim_ab, sim_ba, labels, shards


def infonce_terms(z_a: Tensor, z_b: Tensor, logit_scale: Tensor | float) -> tuple[Tensor, Tensor]:
    """(a_to_b, b_to_a) mean cross-entropies of the whole batch [n, d] on one process."""
    rows, labels = local_rows(z_a.shape[0], z_a.device, 1)
    sim_ab, sim_ba = cosine_rows(z_a, z_b, rows)
    return F.cross_entropy(logit_scale * sim_ab, labels), F.cross_entropy(logit_scale * sim_ba, labels)


@register_objective("infonce")
class InfoNCELoss(nn.Module):
    """Symmetric contrastive InfoNCE (CLIP): each row's pair against every other row of the batch.

    Args:
        temperature: τ, the initial (or fixed) softmax temperature (0.07, CLIP's initial value).
        learnable_temperature: learn log(1/τ) as a parameter of the objective (CLIP does);
            false keeps τ fixed.
        max_logit_scale: the upper clamp of 1/τ (100, CLIP's).
        variance_coeff: μ of VICReg's variance term added as a regulariser, (v(Z) + v(Z'))/2
            on the raw embeddings of the whole batch (0: off).
        gamma, eps: γ and ε of that variance term (1 and 1e-4); γ also sets ``std_below_gamma``.
        gather: with several processes, contrast against the rows of all (gathered with gradient).
        check_finite: raise a clear error when the loss holds NaN or Inf (one host read).

    ``forward(z_a, z_b)`` returns an :class:`ObjectiveResult` with terms ``a_to_b`` and
    ``b_to_a`` (mean cross-entropies of this process's rows; ``variance`` too when μ > 0) and
    statistics ``temperature`` and the per-branch std of the raw embeddings.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable_temperature: bool = True,
        max_logit_scale: float = 100.0,
        variance_coeff: float = 0.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        gather: bool = True,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        if not max_logit_scale > 0:
            raise ValueError(f"max_logit_scale must be > 0 (CLIP's is 100); got {max_logit_scale}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0 (CLIP starts at 0.07); got {temperature}")
        if 1.0 / temperature > max_logit_scale:
            raise ValueError(
                f"temperature must be >= 1/max_logit_scale = {1.0 / max_logit_scale:g}; got {temperature} "
                "(raise it, or raise max_logit_scale)"
            )
        check_variance_options(variance_coeff, gamma, eps)
        log_scale = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        if learnable_temperature:
            self.log_logit_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_logit_scale", log_scale)
        self.learnable_temperature = learnable_temperature
        self.max_logit_scale = max_logit_scale
        self.variance_coeff = variance_coeff
        self.gamma = gamma
        self.eps = eps
        self.gather = gather
        self.check_finite = check_finite

    def extra_repr(self) -> str:
        return (
            f"temperature={1.0 / self.logit_scale().item():.4g}, learnable_temperature={self.learnable_temperature}, "
            f"max_logit_scale={self.max_logit_scale}, variance_coeff={self.variance_coeff}"
        )

    def logit_scale(self) -> Tensor:
        """1/τ, clamped at ``max_logit_scale``; a scalar with gradient when learnable."""
        return self.log_logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()

    def forward(self, z_a: Tensor, z_b: Tensor) -> ObjectiveResult:
        return guarded_forward(z_a, z_b, self._compute, self.check_finite, "InfoNCELoss", "InfoNCE", "(a pair needs a negative)")

    def _compute(self, z_a: Tensor, z_b: Tensor) -> ObjectiveResult:
        z_a, z_b, sim_ab, sim_ba, labels, _ = gathered_cosine_rows(z_a, z_b, self.gather, "InfoNCE")
        scale = self.logit_scale().to(z_a.dtype)
        a_to_b = F.cross_entropy(scale * sim_ab, labels)
        b_to_a = F.cross_entropy(scale * sim_ba, labels)
        loss = (a_to_b + b_to_a) / 2
        loss, terms = add_variance(loss, {"a_to_b": a_to_b, "b_to_a": b_to_a}, z_a, z_b,
                                   self.variance_coeff, self.gamma, self.eps)
        stats = {"temperature": 1.0 / scale.detach(), **std_stats(z_a, z_b, self.gamma, self.eps)}
        return ObjectiveResult(loss, terms, stats)
