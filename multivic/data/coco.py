"""COCO captions on disk, in the two layouts users have.

- Official: ``root/annotations/captions_{train,val}{2014,2017}.json`` with images under
  ``root/{train,val}{2014,2017}/``.
- Karpathy split: ``root/dataset_coco.json`` (splits train, restval, val, test; the 5K test
  split) over the 2014 images, ``root/<filepath>/<filename>``. Its training set is
  train + restval, as in VSE++ and the VICReg paper.

Each image keeps all of its captions. Images without a caption and empty captions are skipped
and counted in one warning (subsets made by hand have them; COCO itself does not); a caption
naming an image the JSON does not list, a JSON that is not COCO, or a missing image file are
errors naming the file and the entry.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from multivic.errors import DataError

logger = logging.getLogger("multivic")

KARPATHY_FILE = "dataset_coco.json"
KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}


@dataclass
class CaptionedImages:
    """Image files and, for each, its captions (one list per image, in file order)."""

    image_paths: list[Path]
    captions: list[list[str]]

    def __len__(self) -> int:
        return len(self.image_paths)

    def flat(self) -> tuple[list[str], list[int]]:
        """All captions in one list, and the index of each caption's image."""
        texts, index = [], []
        for i, caps in enumerate(self.captions):
            texts += caps
            index += [i] * len(caps)
        return texts, index


def _load_json(path: Path) -> dict:
    if not path.is_file():
        raise DataError(f"caption file {path} not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"caption file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"caption file {path} is not a COCO caption file: it has no 'images' list")
    return data


def _finish(source: Path, items: list[tuple[Path, list[str]]], empty_captions: int) -> CaptionedImages:
    kept = [(p, caps) for p, caps in items if caps]
    skipped = len(items) - len(kept)
    if skipped or empty_captions:
        logger.warning("%s: skipped %d images without a caption and %d empty captions", source, skipped, empty_captions)
    for path, _ in kept:
        if not path.is_file():
            raise DataError(f"image {path} named in {source} does not exist")
    if not kept:
        raise DataError(f"{source} holds no captioned images")
    return CaptionedImages([p for p, _ in kept], [c for _, c in kept])


def read_coco_official(root: Path, split: str, year: int | None = None) -> CaptionedImages:
    """``split`` "train" or "val" of the official layout; the year is found when not given."""
    years = [year] if year else [2017, 2014]
    for y in years:
        path = root / "annotations" / f"captions_{split}{y}.json"
        if path.is_file():
            break
    else:
        raise DataError(f"no {root}/annotations/captions_{split}{{{'/'.join(map(str, years))}}}.json: is {root} a COCO folder?")
    data = _load_json(path)
    if not isinstance(data.get("annotations"), list):
        raise DataError(f"caption file {path} is not a COCO caption file: it has no 'annotations' list")
    images, order = {}, []
    for entry in data["images"]:
        images[entry["id"]] = (root / f"{split}{y}" / entry["file_name"], [])
        order.append(entry["id"])
    empty = 0
    for ann in data["annotations"]:
        if ann.get("image_id") not in images:
            raise DataError(f"{path}: annotation {ann.get('id')} names image_id {ann.get('image_id')}, which 'images' does not list")
        text = str(ann.get("caption") or "").strip()
        if not text:
            empty += 1
            continue
        images[ann["image_id"]][1].append(text)
    return _finish(path, [images[i] for i in order], empty)


def read_coco_karpathy(root: Path, split: str, filename: str = KARPATHY_FILE) -> CaptionedImages:
    """``split`` "train" (train + restval), "val" or "test" of the Karpathy split file."""
    if split not in KARPATHY_SPLITS:
        raise DataError(f"unknown Karpathy split {split!r}; known: {', '.join(KARPATHY_SPLITS)}")
    path = root / filename
    data = _load_json(path)
    items, empty = [], 0
    for n, entry in enumerate(data["images"]):
        if "split" not in entry or "filename" not in entry:
            raise DataError(f"{path}: images[{n}] lacks 'split' or 'filename': not a Karpathy split file")
        if entry["split"] not in KARPATHY_SPLITS[split]:
            continue
        caps = []
        for sentence in entry.get("sentences", []):
            text = str(sentence.get("raw") or " ".join(sentence.get("tokens", []))).strip()
            if text:
                caps.append(text)
            else:
                empty += 1
        items.append((root / entry.get("filepath", "") / entry["filename"], caps))
    return _finish(path, items, empty)


def read_coco(root: Path, split: str) -> CaptionedImages:
    """The Karpathy layout when ``dataset_coco.json`` is there, else the official one."""
    if (root / KARPATHY_FILE).is_file():
        return read_coco_karpathy(root, split)
    return read_coco_official(root, "val" if split == "test" else split)
