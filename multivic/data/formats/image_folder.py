"""``image_folder``: ``root/train/<class>/*`` and ``root/val/<class>/*`` (ImageNet's layout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from torch.utils.data import Dataset

from multivic.data.builtin import write_glyphs_dataset, write_shapes_dataset
from multivic.data.formats import DataFormat, LabelledSamples
from multivic.data.readers.image_folder import ImageFolderDataset
from multivic.modalities import Modality
from multivic.registry import register_format


@register_format("image_folder")
@dataclass
class ImageFolderFormat(DataFormat):
    """Labelled images in class sub-folders of ``train/`` and ``val/``."""

    name = "image_folder"
    modalities = ("image",)
    builtins = {"shapes": write_shapes_dataset, "glyphs": write_glyphs_dataset}

    def split(self, split: str, modalities: Mapping[str, Modality]) -> Dataset:
        return LabelledSamples(ImageFolderDataset(self.root / split), "image")
