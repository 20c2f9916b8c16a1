"""Writing a generated captioned data set in the official COCO captions layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterable

from PIL import Image


def write_coco_split(
    root: Path,
    split: str,
    items: Iterable[tuple[Image.Image, list[str]]],
    image_id: Callable[[int], int],
    quality: int,
    first_annotation_id: int = 0,
) -> int:
    """Write ``root/{split}2017/<id>.jpg`` and ``root/annotations/captions_{split}2017.json`` from
    ``(image, captions)`` items, the i-th with id ``image_id(i)``; returns the next annotation id
    (annotation ids run on across splits, as in COCO)."""
    folder = root / f"{split}2017"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations, ann_id = [], [], first_annotation_id
    for i, (image, captions) in enumerate(items):
        ident = image_id(i)
        name = f"{ident:012d}.jpg"
        image.save(folder / name, quality=quality)
        images.append({"id": ident, "file_name": name, "width": image.width, "height": image.height})
        for caption in captions:
            annotations.append({"id": ann_id, "image_id": ident, "caption": caption})
            ann_id += 1
    (root / "annotations" / f"captions_{split}2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations})
    )
    return ann_id
