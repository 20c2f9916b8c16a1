"""A procedurally drawn captioned image set, written in the official COCO captions layout.

Each image holds two objects (shape, colour, size, position drawn at random) and five
differently worded captions that name both objects and their spatial relation, so a caption
pins its image down among many.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

from multivic.data.builtin.coco_layout import write_coco_split
from multivic.data.builtin.shapes import draw_shape

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "white": (240, 240, 240),
}
RELATIONS = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


def _relation(a: tuple[float, float], b: tuple[float, float]) -> str:
    dx, dy = b[0] - a[0], b[1] - a[1]
    if abs(dx) >= abs(dy):
        return "left of" if dx > 0 else "right of"
    return "above" if dy > 0 else "below"


def _captions(o1: dict, o2: dict, rel: str) -> list[str]:
    d1 = f"{o1['size']} {o1['colour']} {o1['shape']}"
    d2 = f"{o2['size']} {o2['colour']} {o2['shape']}"
    return [
        f"a {d1} {rel} a {d2}",
        f"a {o2['colour']} {o2['shape']} {RELATIONS[rel]} a {o1['colour']} {o1['shape']}",
        f"there is a {d1} and a {d2}",
        f"{o1['shape']} in {o1['colour']} {rel} {o2['shape']} in {o2['colour']}",
        f"a picture with a {o2['size']} {o2['colour']} {o2['shape']} and a {o1['colour']} {o1['shape']}",
    ]


def draw_captioned_image(rng: random.Random, size: int = 64) -> tuple[Image.Image, list[str]]:
    big = size * 3
    grey = rng.randint(20, 90)
    img = Image.new("RGB", (big, big), (grey, grey, grey + rng.randint(0, 30)))
    draw = ImageDraw.Draw(img)
    objects = []
    while len(objects) < 2:
        o = {"shape": rng.choice(SHAPES), "colour": rng.choice(list(COLOURS)), "size": rng.choice(["small", "large"])}
        r = big * (0.13 if o["size"] == "small" else 0.22)
        o["pos"] = (rng.uniform(r, big - r), rng.uniform(r, big - r))
        o["r"] = r
        if objects:
            other = objects[0]
            apart = ((o["pos"][0] - other["pos"][0]) ** 2 + (o["pos"][1] - other["pos"][1]) ** 2) ** 0.5
            if apart < o["r"] + other["r"] + big * 0.05 or (o["shape"], o["colour"]) == (
                other["shape"],
                other["colour"],
            ):
                continue
        objects.append(o)
    for o in objects:
        draw_shape(draw, o["shape"], o["pos"][0], o["pos"][1], o["r"], rng.uniform(0, 6.283), COLOURS[o["colour"]])
    o1, o2 = objects
    return img.resize((size, size), Image.Resampling.LANCZOS), _captions(o1, o2, _relation(o1["pos"], o2["pos"]))


def write_captions_dataset(
    root: str | Path, train_images: int = 1500, val_images: int = 500, size: int = 64, seed: int = 0
) -> Path:
    """Write ``root/{train,val}2017/*.jpg`` and ``root/annotations/captions_{train,val}2017.json``."""
    root = Path(root)
    ann_id = 0
    for split, count in (("train", train_images), ("val", val_images)):
        rng = random.Random(f"{seed}-{split}")
        items = (draw_captioned_image(rng, size) for _ in range(count))
        ann_id = write_coco_split(root, split, items, lambda i: i, quality=92, first_annotation_id=ann_id)
    return root
