"""``coco``: COCO captions, in the official layout or the Karpathy split (see
:mod:`multivic.data.readers.coco`), evaluated by image–text retrieval (the VSE++ protocol)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import torch
from torch.utils.data import Dataset

from multivic.data.builtin.captions import write_captions_dataset
from multivic.data.builtin.scenes import write_scenes_dataset
from multivic.data.formats import DataFormat, RetrievalSet, Sample
from multivic.data.readers.coco import VSEPP_CAPTIONS_PER_IMAGE, CaptionedImages, read_coco
from multivic.modalities import Modality, Transformed, identity
from multivic.registry import register_format


class CaptionedSamples(Dataset):
    """Items ``{"image": PIL image, "text": one of its captions}``; the caption is drawn at random
    (torch's RNG) each time, so every epoch pairs each image with a fresh caption."""

    def __init__(self, coco: CaptionedImages, image: Modality) -> None:
        self.coco, self.image = coco, image

    def __len__(self) -> int:
        return len(self.coco)

    def __getitem__(self, index: int) -> Sample:
        captions = self.coco.captions[index]
        pick = int(torch.randint(0, len(captions), ()))
        return {"image": self.image.read_file(self.coco.image_paths[index]), "text": captions[pick]}

    def stored(self, index: int) -> Sample:
        return {"image": Path(self.coco.image_paths[index]), "text": list(self.coco.captions[index])}


@register_format("coco")
@dataclass
class CocoFormat(DataFormat):
    """Images with captions. Training reads train (Karpathy: train + restval); evaluation reads
    the Karpathy 5K test split or the official val set, with ``captions_per_image`` captions per
    image (5, as VSE++). ``year`` picks the official release (None: the newest with both splits)."""

    name = "coco"
    modalities = ("image", "text")
    protocol = "retrieval"
    builtins = {"captions": write_captions_dataset, "scenes": write_scenes_dataset}
    # The official release to read (2014, 2017); null: the newest with both splits.
    year: Optional[int] = None
    # Evaluation ranks each image's first k captions (5, as VSE++); null keeps every caption.
    captions_per_image: Optional[int] = VSEPP_CAPTIONS_PER_IMAGE

    def __post_init__(self) -> None:
        if self.captions_per_image is not None and self.captions_per_image < 1:
            raise ValueError(f"captions_per_image must be >= 1 or null (every caption); got {self.captions_per_image}")

    def _read(self, split: str, per_image: int | None = None) -> CaptionedImages:
        return read_coco(self.root, split, self.year, per_image)

    def split(self, split: str, modalities: Mapping[str, Modality]) -> Dataset:
        return CaptionedSamples(self._read(split), modalities["image"])

    def corpus(self, modality: str, modalities: Mapping[str, Modality]) -> list[str]:
        if modality != "text":
            return super().corpus(modality, modalities)  # type: ignore[return-value]
        return self._read("train").flat()[0]

    def retrieval_set(self, modalities: Mapping[str, Modality]) -> RetrievalSet:
        test = self._read("test", self.captions_per_image)
        texts, index = test.flat()
        images = Transformed(test.image_paths, modalities["image"].read_file, identity)
        return RetrievalSet(("image", images), ("text", texts), index)
