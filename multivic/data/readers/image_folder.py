"""Image readers: an ImageFolder layout and torchvision's CIFAR-10 / STL-10 files on disk.

The ImageFolder layout is ``root/<split>/<class>/<image>``. Unlike torchvision's reader,
problems come back as one-line :class:`DataError` messages that name the folder or file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from PIL import Image
from torch.utils.data import Dataset

from multivic.errors import DataError
from multivic.files import inside_folder
from multivic.modalities import files_with_suffixes
from multivic.modalities.image import IMAGE_EXTENSIONS, load_rgb


class ImageFolderDataset(Dataset):
    """Labelled images from ``split_dir/<class>/*``; items are ``(transform(image), label)``.

    Classes are the sorted sub-folder names. Raises DataError for a missing folder, a folder
    with no class sub-folders, or a class folder with no images.
    """

    def __init__(self, split_dir: str | Path, transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.root = Path(split_dir)
        if not self.root.is_dir():
            raise DataError(
                f"image folder {self.root} does not exist: expected root/train/<class>/* and root/val/<class>/*; "
                "for a folder of unlabelled images set data.format=image_files"
            )
        class_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not class_dirs:
            raise DataError(
                f"image folder {self.root} has no class sub-folders: expected {self.root}/<class>/<image>; "
                "for unlabelled images set data.format=image_files"
            )
        self.classes = [p.name for p in class_dirs]
        self.samples: list[tuple[Path, int]] = []
        seen: dict[str, Path] = {}  # real path -> the path it was first reached by
        for label, class_dir in enumerate(class_dirs):
            _check_class_dir(class_dir, self.root)
            files = files_with_suffixes(class_dir, IMAGE_EXTENSIONS)
            if not files:
                raise DataError(
                    f"class folder {class_dir} has no images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...): "
                    "add images or remove the folder"
                )
            # A symlink out of the data set (someone else's folder linking /etc/passwd) is refused.
            data_root = self.root.parent
            self.samples += [(inside_folder(data_root, f.relative_to(data_root), f"image {f}"), label) for f in files]
            _check_reached_once(files, seen)
        self.targets = [label for _, label in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def path(self, index: int) -> Path:
        return self.samples[index][0]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.samples[index]
        image = load_rgb(path)
        return (self.transform(image) if self.transform else image), label


def _check_class_dir(class_dir: Path, split_dir: Path) -> None:
    """DataError when a class folder is a symbolic link to the split folder or above it (a loop such
    as ``train/loop -> ..``): it would make every image of the data set, val included, a sample of
    one more class."""
    real, split = os.path.realpath(class_dir), os.path.realpath(split_dir)
    if os.path.commonpath([real, split]) == real:
        raise DataError(
            f"class folder {class_dir} links to {real}, which holds the split folder {split_dir} itself: "
            "remove the link (a class folder holds its own images)"
        )


def _check_reached_once(files: list[Path], seen: dict[str, Path]) -> None:
    """DataError when an image is reached a second time through another class folder (two class
    folders linking to one folder): it would be a sample of two classes at once."""
    for f in files:
        real = os.path.realpath(f)
        if real in seen:
            raise DataError(
                f"image {real} is reached twice, as {seen[real]} and as {f}: a class folder links to another one's "
                "images; give each class its own folder"
            )
        seen[real] = f


class TorchvisionImageDataset(Dataset):
    """CIFAR-10 or STL-10 from the files torchvision's readers expect, never downloaded."""

    def __init__(self, name: str, root: str | Path, split: str, transform: Callable | None = None) -> None:
        import torchvision.datasets as tvd

        root = Path(root)
        try:
            if name == "cifar10":
                self.base = tvd.CIFAR10(str(root), train=(split == "train"), download=False)
                self.classes = list(self.base.classes)
                self.targets = list(self.base.targets)
            elif name == "stl10":
                self.base = tvd.STL10(str(root), split="train" if split == "train" else "test", download=False)
                self.classes = list(self.base.classes)
                self.targets = [int(t) for t in self.base.labels]
            else:
                raise DataError(f"unknown torchvision data set {name!r}; known: cifar10, stl10")
        except RuntimeError as exc:
            raise DataError(
                f"{name} not found under {root} ({str(exc).splitlines()[0]}); multivic never downloads: "
                "put the data set there or point data.root at it"
            ) from None
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image, label = self.base[index]
        image = image.convert("RGB")
        return (self.transform(image) if self.transform else image), int(label)
