"""What an evaluation protocol returns: flat metrics and the arrays behind the report's figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor


@dataclass
class EvalResult:
    """``metrics``: flat ``name -> float`` (metrics.json); ``arrays``: flat ``name -> Tensor``
    (spectra and per-dimension stds, eval_arrays.safetensors); ``examples``: JSON-able retrieval
    examples with their thumbnails (see :mod:`multivic.evaluation.examples`), or None."""

    metrics: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, Tensor] = field(default_factory=dict)
    examples: Any = None

    def update(self, other: "EvalResult") -> None:
        self.metrics.update(other.metrics)
        self.arrays.update(other.arrays)
        if other.examples is not None:
            self.examples = other.examples
