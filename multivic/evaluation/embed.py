"""The one embedding loop: a frozen branch over a data set, batched by a DataLoader.

Used for the classification features, both sides of retrieval and ``multivic embed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from multivic.branch import Branch
from multivic.data.loader import describe_fault, shutdown_workers
from multivic.errors import DataError

logger = logging.getLogger("multivic")


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (tensor, or dict of tensors as text collates give) on ``device``."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


@dataclass
class Embedded:
    representations: Tensor  # [N, encoder out_dim], float32 on CPU
    embeddings: Tensor  # [N, expander out_dim], float32 on CPU
    labels: Tensor | None  # [N] int64, when the items were (x, label)
    skipped: list[str] = field(default_factory=list)  # why each left-out item could not be read


class _ReadableOrReason(Dataset):
    """``(item, None)``, or ``(None, reason)`` when reading the item raises."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, str | None]:
        try:
            return self.base[index], None
        except Exception as exc:  # noqa: BLE001 - reported, with the file, in the main process
            return None, describe_fault(exc, index)


class LabelledCollate:
    """``(inputs batched by collate, labels [B] int64)`` of ``(input, label)`` items."""

    def __init__(self, collate: Callable | None = None) -> None:
        self.collate = collate or torch.utils.data.default_collate

    def __call__(self, items: list) -> tuple[Any, Tensor]:
        return self.collate([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items])


@torch.no_grad()
def embed_dataset(
    branch: Branch,
    dataset: Dataset,
    device: torch.device,
    *,
    collate: Callable | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    labelled: bool = False,
    skip_unreadable: bool = False,
) -> Embedded:
    """Encoder and expander outputs of every item, in order, with the branch in eval mode.

    Items are inputs of the branch's modality after its evaluation view, or ``(input, label)``
    pairs when ``labelled``; ``collate`` batches the inputs (default: stacking). With
    ``skip_unreadable`` (labelled items only: the labels stay aligned) an item whose reading
    raises is left out and warned about, with its path; otherwise the error stops the loop.
    """
    collate = LabelledCollate(collate) if labelled else collate or torch.utils.data.default_collate
    skipped: list[str] = []
    if skip_unreadable:
        if not labelled:
            raise ValueError("skip_unreadable needs labelled items (unlabelled outputs are aligned by position)")
        dataset, readable_collate = _ReadableOrReason(dataset), collate

        def collate(pairs: list) -> tuple[Any, list[str]]:  # type: ignore[no-redef]
            items = [item for item, _ in pairs if item is not None]
            return (readable_collate(items) if items else None), [r for _, r in pairs if r is not None]

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    was_training = branch.training
    branch.eval()
    reps, embs, labels = [], [], []
    batches = iter(loader)
    try:
        for batch in batches:
            if skip_unreadable:
                batch, reasons = batch
                for reason in reasons:
                    logger.warning("evaluation left out an unreadable sample: %s", reason)
                skipped += reasons
                if batch is None:
                    continue
            x, y = batch if labelled else (batch, None)
            r = branch.encode(to_device(x, device))
            reps.append(r.float().cpu())
            embs.append(branch.expander(r).float().cpu())
            if y is not None:
                labels.append(y)
    finally:
        # Stop the workers here, also when a worker's error (an unreadable file) ends the loop.
        # That error's traceback holds the iterator, which the garbage collector then shuts
        # down at some later moment (in a long-lived process, during the next evaluation),
        # where its queue's feeder thread fails and prints a traceback of its own.
        shutdown_workers(batches)
        branch.train(was_training)
    if not reps:
        raise DataError(f"none of the {len(dataset)} samples could be read, first: {skipped[0] if skipped else '?'}")  # type: ignore[arg-type]
    return Embedded(torch.cat(reps), torch.cat(embs), torch.cat(labels).long() if labelled else None, skipped)
