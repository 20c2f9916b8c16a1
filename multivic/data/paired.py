"""Samples made of several modalities (an image and its captions), split between the two sides."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.data import Dataset, default_collate

from multivic.data.coco import CaptionedImages
from multivic.data.image_folder import load_rgb


class CaptionPairs(Dataset):
    """Items ``{"image": PIL image, "text": one of its captions}``; the caption is drawn at
    random (torch's RNG) each time, so every epoch pairs each image with a fresh caption."""

    def __init__(self, coco: CaptionedImages) -> None:
        self.coco = coco

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, index: int) -> dict[str, Any]:
        captions = self.coco.captions[index]
        pick = int(torch.randint(0, len(captions), ()))
        return {"image": load_rgb(self.coco.image_paths[index]), "text": captions[pick]}


class SidesDataset(Dataset):
    """``(transform_a(sample[modality_a]), transform_b(sample[modality_b]))`` of a multimodal sample."""

    def __init__(self, base: Dataset, side_a: tuple[str, Callable], side_b: tuple[str, Callable]) -> None:
        self.base, self.side_a, self.side_b = base, side_a, side_b

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        sample = self.base[index]
        (mod_a, tf_a), (mod_b, tf_b) = self.side_a, self.side_b
        return tf_a(sample[mod_a]), tf_b(sample[mod_b])


class PairCollate:
    """Batches pairs side by side, each side with its own collate (images stack, texts tokenise)."""

    def __init__(self, collate_a: Callable = default_collate, collate_b: Callable = default_collate) -> None:
        self.collate_a, self.collate_b = collate_a, collate_b

    def __call__(self, batch: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        return self.collate_a([a for a, _ in batch]), self.collate_b([b for _, b in batch])


class TextCollate:
    """A list of captions → {"input_ids": [B, L], "attention_mask": [B, L]} with a tokenizer."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer.batch(list(texts), self.max_length)
