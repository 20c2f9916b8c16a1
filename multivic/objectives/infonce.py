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

from multivic.objectives._base import Objective, ObjectiveOutput, check_option
from multivic.objectives._contrastive import own_cosine_rows
from multivic.objectives._variance import add_variance, check_regulariser_options, std_stats
from multivic.registry import register_objective


@register_objective("infonce")
class InfoNCELoss(Objective):
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

    ``forward(z_a, z_b)`` returns an :class:`~multivic.objectives.ObjectiveOutput` with terms
    ``a_to_b`` and ``b_to_a`` (mean cross-entropies of this process's rows; ``variance`` too
    when μ > 0) and statistics ``temperature`` and the per-branch std of the raw embeddings.
    """

    title = "InfoNCE"
    rows_needed_for = "(a pair needs a negative)"

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
        super().__init__(gather=gather, check_finite=check_finite)
        check_option("max_logit_scale", max_logit_scale, max_logit_scale > 0, "> 0 (CLIP's is 100)")
        check_option("temperature", temperature, temperature > 0, "> 0 (CLIP starts at 0.07)")
        check_option(
            "temperature",
            temperature,
            1.0 / temperature <= max_logit_scale,
            f">= 1/max_logit_scale = {1.0 / max_logit_scale:g} (raise it, or raise max_logit_scale)",
        )
        check_regulariser_options(variance_coeff, gamma, eps)
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

    def extra_repr(self) -> str:
        return (
            f"temperature={1.0 / self.logit_scale().item():.4g}, learnable_temperature={self.learnable_temperature}, "
            f"max_logit_scale={self.max_logit_scale}, variance_coeff={self.variance_coeff}"
        )

    def logit_scale(self) -> Tensor:
        """1/τ, clamped at ``max_logit_scale``; a scalar with gradient when learnable."""
        return self.log_logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()

    def compute(self, z_a: Tensor, z_b: Tensor) -> ObjectiveOutput:
        n_local = z_a.shape[0]
        z_a, z_b, shards = self.gather_batch(z_a, z_b)
        self.check_rows(z_a.shape[0])
        sim_ab, sim_ba, labels = own_cosine_rows(z_a, z_b, n_local, shards)
        scale = self.logit_scale().to(z_a.dtype)
        a_to_b = F.cross_entropy(scale * sim_ab, labels)
        b_to_a = F.cross_entropy(scale * sim_ba, labels)
        loss = (a_to_b + b_to_a) / 2
        loss, terms = add_variance(
            loss, {"a_to_b": a_to_b, "b_to_a": b_to_a}, z_a, z_b, self.variance_coeff, self.gamma, self.eps
        )
        stats = {"temperature": 1.0 / scale.detach(), **std_stats(z_a, z_b, self.gamma, self.eps)}
        return ObjectiveOutput(loss, terms, stats)
