"""The image modality: PIL images in, [3, H, W] float tensors out; the released VICReg augmentations.

The released code's two views differ only in blur and solarisation probabilities
(blur 1.0 / 0.1, solarise 0.0 / 0.2 for view 1 / view 2); everything else is shared:
random resized crop, horizontal flip 0.5, colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8,
grayscale 0.2, then normalisation with the ImageNet statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from PIL import Image, ImageFilter, UnidentifiedImageError
from torchvision.transforms import v2

from multivic.errors import DataError
from multivic.modalities import Modality
from multivic.registry import accepted_kwargs, register_modality

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageTransform = Callable[[Image.Image], torch.Tensor]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def load_rgb(path: Path) -> Image.Image:
    """Open an image file as RGB; a DataError naming the file when it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from None


class RandomGaussianBlur:
    """PIL Gaussian blur with a radius drawn uniformly from ``sigma``, as the released code blurs.

    PIL's box-approximated blur is several times faster than a convolution with an explicit
    kernel on small images; the radius comes from torch's RNG so runs are reproducible.
    """

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0)) -> None:
        self.sigma = (float(sigma[0]), float(sigma[1]))

    def __call__(self, image: Image.Image) -> Image.Image:
        radius = float(torch.empty(()).uniform_(*self.sigma))
        return image.filter(ImageFilter.GaussianBlur(radius=radius))

    def __repr__(self) -> str:
        return f"RandomGaussianBlur(sigma={self.sigma})"


def image_train_view(
    image_size: int,
    crop_scale: Sequence[float] = (0.08, 1.0),
    hflip_p: float = 0.5,
    jitter: Sequence[float] = (0.4, 0.4, 0.2, 0.1),
    jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    blur_p: float = 1.0,
    blur_sigma: Sequence[float] = (0.1, 2.0),
    solarize_p: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> ImageTransform:
    """One side's augmentation: PIL image in, normalised float tensor [3, image_size, image_size] out."""
    if not (0 < crop_scale[0] <= crop_scale[1] <= 1):
        raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1; got {tuple(crop_scale)}")
    b, c, s, h = jitter
    return v2.Compose(
        [
            v2.RandomResizedCrop(image_size, scale=tuple(crop_scale), interpolation=v2.InterpolationMode.BICUBIC),
            v2.RandomHorizontalFlip(p=hflip_p),
            v2.RandomApply([v2.ColorJitter(brightness=b, contrast=c, saturation=s, hue=h)], p=jitter_p),
            v2.RandomGrayscale(p=grayscale_p),
            v2.RandomApply([RandomGaussianBlur(blur_sigma)], p=blur_p),
            v2.RandomSolarize(threshold=128, p=solarize_p),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


def image_eval_view(
    image_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> ImageTransform:
    """Deterministic evaluation transform: resize to 8/7 of the size, centre crop, normalise."""
    return v2.Compose(
        [
            v2.Resize(int(round(image_size * 8 / 7)), interpolation=v2.InterpolationMode.BICUBIC),
            v2.CenterCrop(image_size),
            v2.PILToTensor(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )


@register_modality("image")
@dataclass
class ImageModality(Modality):
    """RGB images. Option: ``image_size``, the side of the square crops (views give [3, S, S])."""

    name = "image"
    file_suffixes = IMAGE_EXTENSIONS
    image_size: int = 224

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8; got {self.image_size}")

    def read_file(self, path: Path) -> Image.Image:
        return load_rgb(path)

    def train_view(self, **view: Any) -> ImageTransform:
        return image_train_view(self.image_size, **view)

    def view_keys(self) -> set[str]:
        return (accepted_kwargs(image_train_view) or set()) - {"image_size"}

    def eval_view(self) -> ImageTransform:
        return image_eval_view(self.image_size)

    def example_batch(self, batch_size: int = 2) -> torch.Tensor:
        return torch.randn(batch_size, 3, 32, 32)
