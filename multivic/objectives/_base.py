"""What every objective shares: the result type, the input checks, the float32 section, the
non-finite error and the one way of checking options.

An objective subclasses :class:`Objective` and writes :meth:`Objective.compute` on inputs that
are already checked and upcast; ``forward`` does the rest, the same way for every objective.

Not a plug-in (the leading underscore keeps the registry from importing it as one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable

import torch
from torch import Tensor, nn

from multivic.distributed import gather_with_grad, world_size
from multivic.errors import NonFiniteLossError


@dataclass
class ObjectiveOutput:
    """What an objective's ``forward`` returns. All tensors are scalars in float32 (or wider).

    ``loss``: the scalar to minimise, with its graph. ``terms``: the named unweighted terms
    (with gradient), also readable as attributes (``out.invariance`` is
    ``out.terms["invariance"]``). ``stats``: detached monitoring numbers, e.g. ``a/std_mean``.
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

    def __getattr__(self, name: str) -> Tensor:
        # Only called when normal lookup fails. __dict__ is read directly so that a half-built
        # instance (copy, unpickling) raises AttributeError instead of recursing.
        terms = self.__dict__.get("terms")
        if terms is not None and name in terms:
            return terms[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or term {name!r}")


class Objective(nn.Module):
    """Base of the built-in objectives: ``forward(z_a, z_b)`` checks, upcasts and guards
    :meth:`compute`.

    ``forward`` takes the two branches' outputs, [n_local, d] tensors of any floating dtype,
    and returns :meth:`compute`'s :class:`ObjectiveOutput`:

    1. both inputs must be 2-D floating-point tensors of one shape (ValueError naming which
       is not), with at least 2 rows on one process (with several, :meth:`compute` checks the
       gathered batch with :meth:`check_rows`);
    2. :meth:`compute` runs on the inputs upcast to float32 (float64 stays float64) with
       autocast off, whatever precision the model ran in;
    3. with ``check_finite``, a non-finite loss raises :class:`NonFiniteLossError` naming the
       input that holds NaN or Inf, else the term that is not finite. The check reads one
       scalar back to the host; the trainer turns it off when it skips such steps itself.

    Args:
        gather: with several processes, :meth:`gather_batch` gathers the embeddings of all of
            them, with gradient.
        check_finite: raise on a non-finite loss (see 3.).
    """

    # The objective's name in messages ("the VICReg loss is not finite"); the class name if empty.
    title: ClassVar[str] = ""
    # Why it needs 2 rows, for the message of check_rows ("to estimate a variance").
    rows_needed_for: ClassVar[str] = ""

    def __init__(self, gather: bool = True, check_finite: bool = True) -> None:
        super().__init__()
        self.gather = gather
        self.check_finite = check_finite

    def compute(self, z_a: Tensor, z_b: Tensor) -> ObjectiveOutput:
        """The loss of this process's [n_local, d] rows, checked and in float32 or wider."""
        raise NotImplementedError

    def forward(self, z_a: Tensor, z_b: Tensor) -> ObjectiveOutput:
        check_pair(z_a, z_b, type(self).__name__)
        if world_size() == 1:
            self.check_rows(z_a.shape[0])
        with torch.autocast(device_type=z_a.device.type, enabled=False):
            dtype = torch.promote_types(z_a.dtype, torch.float32)
            z_a, z_b = z_a.to(dtype), z_b.to(dtype)
            out = self.compute(z_a, z_b)
        if self.check_finite and not bool(torch.isfinite(out.loss)):
            raise_non_finite(z_a, z_b, out, self.title or type(self).__name__)
        return out

    def gather_batch(self, z_a: Tensor, z_b: Tensor) -> tuple[Tensor, Tensor, int]:
        """(z_a, z_b, shards): the whole batch [n, d] of every process, gathered with gradient
        (the backward sums over processes), when ``gather`` and several processes run; the
        inputs and 1 otherwise."""
        shards = world_size() if self.gather else 1
        if shards > 1:
            z_a, z_b = gather_with_grad(z_a), gather_with_grad(z_b)
        return z_a, z_b, shards

    def check_rows(self, n: int) -> None:
        """At least 2 rows in the whole batch of ``n`` rows; ValueError otherwise."""
        if n < 2:
            needs = f" {self.rows_needed_for}" if self.rows_needed_for else ""
            raise ValueError(
                f"{self.title or type(self).__name__} needs at least 2 rows in the whole batch{needs}; got n={n}"
            )


def check_pair(z_a: Tensor, z_b: Tensor, who: str) -> None:
    """Both inputs 2-D floating-point tensors of the same shape; ValueError naming which not."""
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        if z.dim() != 2:
            raise ValueError(f"{who} expects 2-D embeddings [batch, dim]; got {name} with shape {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"{who} expects floating-point embeddings; got {name} of dtype {z.dtype}")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b must have the same shape; got {tuple(z_a.shape)} and {tuple(z_b.shape)}")


def raise_non_finite(z_a: Tensor, z_b: Tensor, out: ObjectiveOutput, what: str) -> None:
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


def check_option(name: str, value: Any, ok: bool, rule: str) -> None:
    """The one way an objective refuses an option: ``ValueError("<name> must be <rule>; got
    <value>")`` unless ``ok``. The message starts with the argument's name, so that the config
    can report it as ``loss.<name> ...``. Write ``ok`` so that NaN fails it (``x > 0``, not
    ``not x <= 0``)."""
    if not ok:
        raise ValueError(f"{name} must be {rule}; got {value!r}")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    """:func:`check_option` for an option that names one of ``choices``."""
    choices = tuple(choices)
    check_option(name, value, value in choices, f"one of {choices}")
