"""What the objectives other than VICReg share: input checks, float32 arithmetic, the output
type, per-branch std statistics and VICReg's variance term as an optional regulariser.

Not a plug-in (the leading underscore keeps the registry from importing it as one).

Every objective here is written so that after DDP's gradient averaging the gradients equal
those of one process on the whole batch: process r returns a loss L_r whose mean over the W
processes is the whole batch's loss, with the embeddings gathered with gradient
(:func:`multivic.distributed.gather_with_grad`, whose backward sums over processes). Terms
computed from the gathered batch alone (the variance regulariser, Barlow Twins after its
all-reduce) are the same on every process; terms over a process's own rows (InfoNCE, VSE++)
differ between processes and average to the whole batch's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from multivic.distributed import world_size
from multivic.errors import NonFiniteLossError
from multivic.objectives.vicreg import per_dimension_std, variance_loss


@dataclass
class ObjectiveResult:
    """What the objectives of this package other than VICReg return.

    ``loss``: the scalar to minimise, with its graph. ``terms``: the named unweighted terms
    (with gradient). ``stats``: detached monitoring numbers, e.g. ``a/std_mean``.
    """

    loss: Tensor
    terms: dict[str, Tensor]
    stats: dict[str, Tensor] = field(default_factory=dict)

    def metrics(self) -> dict[str, Tensor]:
        """Flat, detached scalars for logging: the loss, its terms and the statistics."""
        out = {"loss": self.loss.detach()}
        out.update({name: value.detach() for name, value in self.terms.items()})
        out.update(self.stats)
        return out


def check_pair(z_a: Tensor, z_b: Tensor, who: str) -> None:
    """Both inputs 2-D floating-point tensors of the same shape; ValueError naming which not."""
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        if z.dim() != 2:
            raise ValueError(f"{who} expects 2-D embeddings [batch, dim]; got {name} with shape {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"{who} expects floating-point embeddings; got {name} of dtype {z.dtype}")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must have the same shape; got {tuple(z_a.shape)} and {tuple(z_b.shape)}")


def check_rows(n: int, who: str, needs: str) -> None:
    """At least 2 rows in the whole batch."""
    if n < 2:
        raise ValueError(f"{who} needs at least 2 rows in the whole batch {needs}; got n={n}")


def in_float32(z_a: Tensor, z_b: Tensor, compute: Callable[[Tensor, Tensor], ObjectiveResult]) -> tuple[Tensor, Tensor, ObjectiveResult]:
    """``compute`` on the inputs upcast to float32 (float64 stays float64), autocast disabled."""
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        dtype = torch.promote_types(z_a.dtype, torch.float32)
        z_a, z_b = z_a.to(dtype), z_b.to(dtype)
        return z_a, z_b, compute(z_a, z_b)


def raise_non_finite(z_a: Tensor, z_b: Tensor, out: ObjectiveResult, what: str) -> None:
    """The one-line :class:`NonFiniteLossError` of a non-finite loss: which input holds the bad
    values, else which term is not finite."""
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        bad = ~torch.isfinite(z)
        if bool(bad.any()):
            rows = bad.any(dim=1).nonzero().flatten()[:5].tolist()
            raise NonFiniteLossError(
                f"{name} holds {int(bad.sum())} non-finite values (NaN or Inf), first in rows {rows}: "
                "the model diverged or its input is corrupt"
            )
    terms = ", ".join(f"{k}={float(v)}" for k, v in out.terms.items() if not bool(torch.isfinite(v)))
    raise NonFiniteLossError(
        f"the {what} loss is not finite ({out.loss.item()}; {terms or 'the weighted sum overflows'}) although this "
        "process's inputs are finite: values overflow float32, or another process holds the bad rows"
    )


def finish(z_a: Tensor, z_b: Tensor, out: ObjectiveResult, check_finite: bool, what: str) -> ObjectiveResult:
    """``out``, after the finite check (one scalar read back to the host) when asked for."""
    if check_finite and not bool(torch.isfinite(out.loss)):
        raise_non_finite(z_a, z_b, out, what)
    return out


def guarded_forward(
    z_a: Tensor, z_b: Tensor, compute: Callable[[Tensor, Tensor], ObjectiveResult], check_finite: bool,
    who: str, what: str, rows_needed_for: str,
) -> ObjectiveResult:
    """An objective's forward around its ``compute``: the inputs checked (``who``: the class
    name in messages), at least 2 rows on one process (with several, ``compute`` checks the
    gathered batch), float32 without autocast, then the finite check (``what``: the objective's
    name in messages)."""
    check_pair(z_a, z_b, who)
    if world_size() == 1:
        check_rows(z_a.shape[0], what, rows_needed_for)
    z_a, z_b, out = in_float32(z_a, z_b, compute)
    return finish(z_a, z_b, out, check_finite, what)


def check_variance_options(variance_coeff: float, gamma: float, eps: float) -> None:
    """The variance regulariser's options; messages start with the argument's name."""
    if not variance_coeff >= 0:
        raise ValueError(f"variance_coeff must be >= 0 (0 turns the variance regulariser off); got {variance_coeff}")
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0 (the target std of each dimension, 1 in VICReg); got {gamma}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0 (it keeps sqrt differentiable at 0); got {eps}")


def variance_regulariser(z_a: Tensor, z_b: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """VICReg's variance term of both branches, halved as the released code does:
    (v(Z_a) + v(Z_b)) / 2 with v = :func:`multivic.objectives.vicreg.variance_loss`.

    Give it the gathered batch (every process then computes the same value)."""
    return (variance_loss(z_a, gamma, eps) + variance_loss(z_b, gamma, eps)) / 2


def std_stats(z_a: Tensor, z_b: Tensor, gamma: float, eps: float = 1e-4) -> dict[str, Tensor]:
    """Per branch, detached: ``std_mean``, ``std_min`` and ``std_below_gamma`` of the
    per-dimension std of the embeddings (as VICReg reports them), keyed "a/..." and "b/..."."""
    stats = {}
    with torch.no_grad():
        for side, z in (("a", z_a), ("b", z_b)):
            std = per_dimension_std(z.detach(), eps)
            stats[f"{side}/std_mean"] = std.mean()
            stats[f"{side}/std_min"] = std.min()
            stats[f"{side}/std_below_gamma"] = (std < gamma).to(std.dtype).mean()
    return stats


def add_variance(loss: Tensor, terms: dict[str, Tensor], z_a: Tensor, z_b: Tensor,
                 coeff: float, gamma: float, eps: float) -> tuple[Tensor, dict[str, Tensor]]:
    """``loss + coeff·variance`` with the term "variance" added to ``terms`` when ``coeff`` > 0;
    unchanged otherwise. ``z_a``, ``z_b``: the gathered batch."""
    if coeff == 0:
        return loss, terms
    variance = variance_regulariser(z_a, z_b, gamma, eps)
    return loss + coeff * variance, {**terms, "variance": variance}
