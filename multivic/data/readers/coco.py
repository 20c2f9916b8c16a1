"""COCO captions on disk, in the two layouts users have.

- Official: ``root/annotations/captions_{train,val}{2014,2017}.json`` with images under
  ``root/{train,val}{2014,2017}/``. Both splits come from one release: the 2014 and 2017
  releases split the same images differently (most of val2014 is in train2017, and val2017 is
  taken from train2014 and val2014), so training on one release's train and evaluating on the
  other's val tests on training images. With ``year`` None the newest release holding both
  caption files is used; a folder whose train and val files are only from different releases is
  an error (name the release with ``year``). A folder holding one split only (an evaluation-only
  copy) reads that split from its newest release.
- Karpathy split: ``root/dataset_coco.json`` (splits train, restval, val, test; the 5K test
  split) over the 2014 images, ``root/<filepath>/<filename>``. Its training set is
  train + restval, as in VSE++ and the VICReg paper. It has no other release: ``year`` must be
  None or 2014.

Each image keeps all of its captions unless ``captions_per_image`` is set: then it keeps its
first k (in file order), as the VSE++ 1K/5K protocols do with exactly 5 captions per image (a few
COCO images have 6 or 7). Images with fewer than k are kept with what they have and counted in
one warning (COCO has none; subsets made by hand may). Images without a caption and empty
captions are skipped and counted in one warning (subsets made by hand have them; COCO itself
does not); a caption naming an image the JSON does not list, a JSON that is not COCO, or a
missing image file are errors naming the file and the entry.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from multivic.errors import DataError
from multivic.files import MAX_INDEX_BYTES, inside_folder, read_json_file

logger = logging.getLogger("multivic")

KARPATHY_FILE = "dataset_coco.json"
KARPATHY_SPLITS = {"train": ("train", "restval"), "val": ("val",), "test": ("test",)}
KARPATHY_YEAR = 2014
# The releases with caption files, newest first (2015 is a test-only release without captions).
OFFICIAL_YEARS = (2017, 2014)
# The evaluation protocol of VSE++ and the COCO 1K/5K tables: 5 captions per image.
VSEPP_CAPTIONS_PER_IMAGE = 5


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
    # read_json_file: also an integer of thousands of digits or JSON nested too deeply is a DataError
    data = read_json_file(path, "point data.root at a COCO captions folder", MAX_INDEX_BYTES, DataError, expect=None)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(f"caption file {path} is not a COCO caption file: it has no 'images' list")
    return data


def _finish(
    source: Path, items: list[tuple[Path, list[str]]], empty_captions: int, captions_per_image: int | None
) -> CaptionedImages:
    kept = [(p, caps) for p, caps in items if caps]
    skipped = len(items) - len(kept)
    if skipped or empty_captions:
        logger.warning("%s: skipped %d images without a caption and %d empty captions", source, skipped, empty_captions)
    if captions_per_image is not None:
        # After dropping empty captions, so an image keeps its first k real ones.
        short = sum(len(caps) < captions_per_image for _, caps in kept)
        if short:
            logger.warning(
                "%s: %d images have fewer than %d captions; kept with the ones they have",
                source,
                short,
                captions_per_image,
            )
        kept = [(p, caps[:captions_per_image]) for p, caps in kept]
    for path, _ in kept:
        if not path.is_file():
            raise DataError(f"image {path} named in {source} does not exist")
    if not kept:
        raise DataError(f"{source} holds no captioned images")
    return CaptionedImages([p for p, _ in kept], [c for _, c in kept])


def _check_captions_per_image(captions_per_image: int | None) -> None:
    k = captions_per_image
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise DataError(
            f"captions_per_image must be a positive integer or None (all captions); got {captions_per_image!r}"
        )


def official_year(root: Path, split: str, year: int | None = None) -> int:
    """The release whose ``captions_{split}{year}.json`` is read (see the module docstring)."""
    annotations = root / "annotations"
    if year is not None:
        if not (annotations / f"captions_{split}{year}.json").is_file():
            found = sorted(p.name for p in annotations.glob("captions_*.json"))
            holds = f"it holds {', '.join(found)}" if found else "it holds no caption file"
            raise DataError(
                f"{annotations}/captions_{split}{year}.json not found ({holds}): add it or set data.year to a release "
                "that is there"
            )
        return year
    have = {
        s: [y for y in OFFICIAL_YEARS if (annotations / f"captions_{s}{y}.json").is_file()] for s in ("train", "val")
    }
    complete = [y for y in OFFICIAL_YEARS if y in have["train"] and y in have["val"]]
    if complete:
        return complete[0]
    if have["train"] and have["val"]:
        # Train and val only from different releases: one release's val images are the other's training images.
        train_year, val_year = have["train"][0], have["val"][0]
        raise DataError(
            f"{annotations} holds captions_train{train_year}.json and captions_val{val_year}.json, from different "
            "COCO releases: "
            f"{val_year}'s val images are in {train_year}'s train; add the missing file or set data.year"
        )
    if have[split]:
        return have[split][0]  # only this split is there (an evaluation-only folder): no release to mix with
    other = "val" if split == "train" else "train"
    if have[other]:
        raise DataError(
            f"{annotations}/captions_{split}{have[other][0]}.json not found "
            f"(the folder holds captions_{other}{have[other][0]}.json only): add it"
        )
    names = "/".join(map(str, OFFICIAL_YEARS))
    raise DataError(f"no {annotations}/captions_{split}{{{names}}}.json: is {root} a COCO folder?")


def read_coco_official(
    root: Path, split: str, year: int | None = None, captions_per_image: int | None = None
) -> CaptionedImages:
    """``split`` "train" or "val" of the official layout.

    Args:
        year: the release (2014 or 2017); None picks the newest release holding both the train and
            the val caption file, so both splits come from one release.
        captions_per_image: keep each image's first k captions (5 for the VSE++ protocol); None
            keeps all.
    """
    _check_captions_per_image(captions_per_image)
    y = official_year(root, split, year)
    path = root / "annotations" / f"captions_{split}{y}.json"
    data = _load_json(path)
    if not isinstance(data.get("annotations"), list):
        raise DataError(f"caption file {path} is not a COCO caption file: it has no 'annotations' list")
    images, order = {}, []
    for n, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), (int, str)) or "file_name" not in entry:
            raise DataError(f"{path}: images[{n}] lacks an 'id' (a number) or a 'file_name': not a COCO caption file")
        where = f"{path}: images[{n}] (file_name)"
        if entry["id"] in images:  # a second entry would replace the first and count twice in evaluation
            raise DataError(
                f"{path}: images[{n}] repeats the id {str(entry['id'])[:40]} of images[{order.index(entry['id'])}]: "
                "each image is listed once; remove the duplicate"
            )
        images[entry["id"]] = (inside_folder(root, Path(f"{split}{y}") / str(entry["file_name"]), where), [])
        order.append(entry["id"])
    empty = 0
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), (int, str)):
            raise DataError(f"{path}: annotations[{n}] is not an object with an 'image_id': not a COCO caption file")
        if ann.get("image_id") not in images:
            raise DataError(
                f"{path}: annotation {ann.get('id')} names image_id {ann.get('image_id')}, which 'images' does not list"
            )
        text = str(ann.get("caption") or "").strip()
        if not text:
            empty += 1
            continue
        images[ann["image_id"]][1].append(text)
    return _finish(path, [images[i] for i in order], empty, captions_per_image)


def read_coco_karpathy(
    root: Path, split: str, filename: str = KARPATHY_FILE, captions_per_image: int | None = None
) -> CaptionedImages:
    """``split`` "train" (train + restval), "val" or "test" of the Karpathy split file;
    ``captions_per_image`` as in :func:`read_coco_official`."""
    _check_captions_per_image(captions_per_image)
    if split not in KARPATHY_SPLITS:
        raise DataError(f"unknown Karpathy split {split!r}; known: {', '.join(KARPATHY_SPLITS)}")
    path = root / filename
    data = _load_json(path)
    items, empty = [], 0
    for n, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "split" not in entry or "filename" not in entry:
            raise DataError(f"{path}: images[{n}] lacks 'split' or 'filename': not a Karpathy split file")
        if entry["split"] not in KARPATHY_SPLITS[split]:
            continue
        caps = []
        sentences = entry.get("sentences", [])
        if not isinstance(sentences, list) or not all(isinstance(x, dict) for x in sentences):
            raise DataError(f"{path}: images[{n}] 'sentences' is not a list of objects: not a Karpathy split file")
        for sentence in sentences:
            raw, tokens = sentence.get("raw"), sentence.get("tokens", [])
            if not (isinstance(raw, (str, type(None))) and isinstance(tokens, list)) or not all(
                isinstance(t, str) for t in tokens
            ):
                raise DataError(
                    f"{path}: images[{n}] has a sentence whose 'raw' is not text or whose 'tokens' are not a list of "
                    "words: not a Karpathy split file"
                )
            text = str(raw or " ".join(tokens)).strip()
            if text:
                caps.append(text)
            else:
                empty += 1
        name = Path(str(entry.get("filepath", ""))) / str(entry["filename"])
        items.append((inside_folder(root, name, f"{path}: images[{n}] (filepath/filename)"), caps))
    return _finish(path, items, empty, captions_per_image)


def read_coco(
    root: Path, split: str, year: int | None = None, captions_per_image: int | None = None
) -> CaptionedImages:
    """The Karpathy layout when ``dataset_coco.json`` is there, else the official one ("test" reads val).

    Args:
        year: the official release to read both splits from; None picks the newest complete one.
            The Karpathy split is over the 2014 images only, so there ``year`` must be None or
            2014: any other year is an error rather than silently ignored.
        captions_per_image: keep each image's first k captions (5 for the VSE++ protocol on the
            evaluation split); None keeps all.
    """
    if (root / KARPATHY_FILE).is_file():
        if year is not None and year != KARPATHY_YEAR:
            raise DataError(
                f"{root} holds the Karpathy split {KARPATHY_FILE}, which is over the {KARPATHY_YEAR} images only: "
                f"year {year} does not apply; drop data.year or set it to {KARPATHY_YEAR}"
            )
        return read_coco_karpathy(root, split, captions_per_image=captions_per_image)
    return read_coco_official(root, "val" if split == "test" else split, year, captions_per_image)
