"""Pairs of views of one sample, one transform per side of the joint embedding."""

from __future__ import annotations

from typing import Any, Callable

from torch.utils.data import Dataset


class TwoViewDataset(Dataset):
    """Wraps a dataset of ``(sample, label)`` into ``(view_a, view_b)``.

    The base dataset must return untransformed samples; ``transform_a`` and ``transform_b``
    are the two sides' input pipelines (they may differ in modality-specific ways).
    """

    def __init__(self, base: Dataset, transform_a: Callable[[Any], Any], transform_b: Callable[[Any], Any]) -> None:
        self.base = base
        self.transform_a = transform_a
        self.transform_b = transform_b

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        sample, _ = self.base[index]
        return self.transform_a(sample), self.transform_b(sample)
