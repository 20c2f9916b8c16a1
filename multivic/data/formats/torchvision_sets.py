"""``cifar10`` and ``stl10``: the files torchvision's readers expect, never downloaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from torch.utils.data import Dataset

from multivic.data.formats import DataFormat, LabelledSamples
from multivic.data.readers.image_folder import TorchvisionImageDataset
from multivic.modalities import Modality
from multivic.registry import register_format


@register_format("cifar10")
@dataclass
class Cifar10Format(DataFormat):
    """CIFAR-10 as torchvision stores it (``root/cifar-10-batches-py``); val is the test set."""

    name = "cifar10"
    modalities = ("image",)

    def split(self, split: str, modalities: Mapping[str, Modality]) -> Dataset:
        return LabelledSamples(TorchvisionImageDataset(self.name, self.root, split), "image")


@register_format("stl10")
@dataclass
class Stl10Format(Cifar10Format):
    """STL-10 as torchvision stores it (``root/stl10_binary``); train is the labelled train split."""

    name = "stl10"
