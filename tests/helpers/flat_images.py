"""A folder of images without class folders, from the tiny image set (the unlabelled case)."""

import shutil
from pathlib import Path


def write_flat_images(root: Path, tiny_images: Path) -> Path:
    """The tiny set's training images in one folder and a nested one, without class folders."""
    for i, path in enumerate(sorted((tiny_images / "train").rglob("*.png"))):
        target = root / ("nested" if i % 3 == 0 else ".") / f"img_{i:03d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return root
