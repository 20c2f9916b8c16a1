"""The image modality: PIL images in, [3, H, W] float tensors out; the released VICReg augmentations.

The released code's two views differ only in blur and solarisation probabilities
(blur 1.0 / 0.1, solarise 0.0 / 0.2 for view 1 / view 2); everything else is shared:
random resized crop, horizontal flip 0.5, colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8,
grayscale 0.2, then normalisation with the ImageNet statistics.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter, UnidentifiedImageError
from torchvision.transforms import v2

from multivic.errors import DataError
from multivic.modalities import Modality, check_at_most
from multivic.registry import accepted_kwargs, register_modality

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageTransform = Callable[[Image.Image], torch.Tensor]
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
MAX_IMAGE_SIZE = 8192  # a [3, 8192, 8192] float view is 800 MB: larger is a typo or a tampered export
# Shard members read as images; what `multivic shard` re-encodes is written as the first (lossless).
IMAGE_MEMBERS = ("png", "jpg", "jpeg", "webp", "bmp", "ppm", "tif", "tiff")


# Grayscale modes holding 16-bit values (PNG, TIFF, PGM of 16 bits); convert("RGB") clips them at 255.
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_rgb(source: Path | bytes, where: str | None = None) -> Image.Image:
    """An image file (a path, or its bytes) as 8-bit RGB; a DataError naming ``where`` (default:
    the path) when it cannot be read. The one image decoder: files and shard members alike.

    16-bit grayscale is scaled to 8 bits (v / 257, so 65535 is 255), not clipped; a palette
    image with a transparent colour goes through RGBA, as Pillow asks; alpha is dropped.
    """
    where = where or str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            return to_rgb(img)
    except Image.DecompressionBombError as exc:  # not an OSError: PIL refuses to decode it at all
        raise DataError(
            f"cannot read image {where}: {_bomb_size(exc)}, over PIL's decompression-bomb limit; resize it or remove it"
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"cannot read image {where}: {exc.__class__.__name__}: {exc}") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` as 8-bit RGB, with high-bit-depth grayscale scaled rather than clipped."""
    if img.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(img, dtype=np.float64) / 257.0
        img = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def _bomb_size(exc: Exception) -> str:
    """ "the image is W×H pixels", from the size PIL checked (the innermost frame of its error)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    size = tb.tb_frame.f_locals.get("size") if tb is not None else None
    if isinstance(size, tuple) and len(size) == 2:
        return f"the image is {size[0]}×{size[1]} pixels"
    return f"the image is too large ({exc})"  # another Pillow: its own message gives the pixel count


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
    # The side of the square views in pixels (training crops and the evaluation's centre crop).
    image_size: int = 224

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"image_size must be >= 8; got {self.image_size}")
        check_at_most("image_size", self.image_size, MAX_IMAGE_SIZE, "pixels per side of a view")

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

    def member_extensions(self) -> tuple[str, ...]:
        return IMAGE_MEMBERS

    def encode(self, value: Image.Image) -> tuple[str, bytes]:
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return "png", buffer.getvalue()

    def decode(self, data: bytes, ext: str, where: str) -> Image.Image:
        return load_rgb(data, where)
