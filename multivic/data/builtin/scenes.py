"""A second procedurally drawn captioned image set, written in the official COCO captions layout
(``root/{train,val}2017/*.jpg``, ``root/annotations/captions_{train,val}2017.json``) as
:mod:`multivic.data.builtin.captions` writes it.

Independent of that set by construction: small outdoor scenes instead of shapes on grey. Each
48 px image has a sky (day, dusk or night) over a ground (grass, sand or water) and two or three
objects (tree, house, sun, cloud, boat, flower, kite, fish; fish and boats only on water) in
other colours, in the left, middle or right third. The five captions per image name the time of
day, the ground, the objects with their colours and where they stand, each in other words, so
the vocabulary shares almost nothing with the captions set's.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

from multivic.data.builtin.coco_layout import write_coco_split

SKIES = {
    "day": ((110, 170, 235), (190, 220, 250)),
    "dusk": ((235, 130, 80), (120, 70, 130)),
    "night": ((15, 20, 55), (45, 50, 95)),
}
GROUNDS = {"grass": (60, 140, 50), "sand": (215, 190, 120), "water": (40, 90, 170)}
PAINTS = {
    "orange": (240, 140, 30),
    "pink": (240, 130, 190),
    "cyan": (60, 220, 230),
    "brown": (120, 75, 35),
    "black": (20, 20, 20),
    "silver": (185, 185, 195),
}
LAND_THINGS = ("tree", "house", "flower")
SKY_THINGS = ("sun", "cloud", "kite")
WATER_THINGS = ("boat", "fish")
PLACES = ("left", "middle", "right")
AT = {"left": "on the left", "middle": "in the middle", "right": "on the right"}


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _draw_thing(draw: ImageDraw.ImageDraw, thing: str, cx: float, base: float, s: float, paint, sky_y: float) -> None:
    """``thing`` of size ``s`` standing at (cx, base) (sky things: centred at (cx, sky_y))."""
    if thing == "tree":
        draw.rectangle([cx - 0.12 * s, base - 0.5 * s, cx + 0.12 * s, base], fill=(90, 60, 30))
        draw.ellipse([cx - 0.5 * s, base - 1.3 * s, cx + 0.5 * s, base - 0.4 * s], fill=paint)
    elif thing == "house":
        draw.rectangle([cx - 0.45 * s, base - 0.7 * s, cx + 0.45 * s, base], fill=paint)
        draw.polygon(
            [(cx - 0.6 * s, base - 0.7 * s), (cx + 0.6 * s, base - 0.7 * s), (cx, base - 1.25 * s)], fill=(150, 30, 30)
        )
        draw.rectangle([cx - 0.1 * s, base - 0.35 * s, cx + 0.1 * s, base], fill=(50, 35, 20))
    elif thing == "flower":
        draw.line([cx, base, cx, base - 0.8 * s], fill=(30, 110, 30), width=max(1, int(0.1 * s)))
        for dx, dy in ((-0.2, 0), (0.2, 0), (0, -0.2), (0, 0.2)):
            x, y = cx + dx * s, base - 0.95 * s + dy * s
            draw.ellipse([x - 0.17 * s, y - 0.17 * s, x + 0.17 * s, y + 0.17 * s], fill=paint)
        draw.ellipse([cx - 0.1 * s, base - 1.05 * s, cx + 0.1 * s, base - 0.85 * s], fill=(250, 230, 60))
    elif thing == "sun":
        for k in range(8):
            a = k * math.pi / 4
            draw.line(
                [cx, sky_y, cx + 0.6 * s * math.cos(a), sky_y + 0.6 * s * math.sin(a)],
                fill=paint,
                width=max(1, int(0.08 * s)),
            )
        draw.ellipse([cx - 0.35 * s, sky_y - 0.35 * s, cx + 0.35 * s, sky_y + 0.35 * s], fill=paint)
    elif thing == "cloud":
        for dx, r in ((-0.35, 0.25), (0.0, 0.33), (0.35, 0.25)):
            draw.ellipse([cx + dx * s - r * s, sky_y - r * s, cx + dx * s + r * s, sky_y + r * s], fill=paint)
    elif thing == "kite":
        draw.polygon(
            [(cx, sky_y - 0.45 * s), (cx + 0.3 * s, sky_y), (cx, sky_y + 0.45 * s), (cx - 0.3 * s, sky_y)], fill=paint
        )
        draw.line([cx, sky_y + 0.45 * s, cx - 0.2 * s, sky_y + 1.0 * s], fill=(240, 240, 240), width=1)
    elif thing == "boat":
        draw.polygon(
            [
                (cx - 0.55 * s, base - 0.3 * s),
                (cx + 0.55 * s, base - 0.3 * s),
                (cx + 0.35 * s, base),
                (cx - 0.35 * s, base),
            ],
            fill=paint,
        )
        draw.line([cx, base - 0.3 * s, cx, base - 1.1 * s], fill=(60, 40, 20), width=max(1, int(0.06 * s)))
        draw.polygon(
            [(cx + 0.03 * s, base - 1.05 * s), (cx + 0.03 * s, base - 0.4 * s), (cx + 0.45 * s, base - 0.4 * s)],
            fill=(245, 245, 245),
        )
    elif thing == "fish":
        y = base - 0.3 * s
        draw.ellipse([cx - 0.45 * s, y - 0.22 * s, cx + 0.25 * s, y + 0.22 * s], fill=paint)
        draw.polygon([(cx + 0.2 * s, y), (cx + 0.55 * s, y - 0.25 * s), (cx + 0.55 * s, y + 0.25 * s)], fill=paint)
    else:
        raise ValueError(f"unknown thing {thing!r}")


def _captions(sky: str, ground: str, things: list[dict]) -> list[str]:
    def name(o: dict) -> str:
        return f"{o['paint']} {o['thing']}"

    listed = " and ".join(_a(name(o)) for o in things)
    where = ", ".join(f"the {name(o)} {AT[o['place']]}" for o in things)
    kinds = " and ".join(o["thing"] for o in things)
    time_words = {"day": "in daylight", "dusk": "at sunset", "night": "at night"}[sky]
    ground_words = {"grass": "a grassy meadow", "sand": "a sandy beach", "water": "a lake"}[ground]
    first, last = things[0], things[-1]
    return [
        f"{listed} {time_words} over {ground_words}",
        f"a {sky} scene with {where}",
        f"{ground_words} {time_words} showing {kinds}",
        f"{AT[first['place']]} stands {_a(name(first))} while {_a(name(last))} is {AT[last['place']]}",
        f"drawing of {ground} under a {sky} sky with {len(things)} things: {kinds}",
    ]


def draw_scene(rng: random.Random, size: int = 48) -> tuple[Image.Image, list[str]]:
    """One scene image and its five captions."""
    big = size * 4
    sky, ground = rng.choice(list(SKIES)), rng.choice(list(GROUNDS))
    img = Image.new("RGB", (big, big))
    draw = ImageDraw.Draw(img)
    horizon = int(big * rng.uniform(0.5, 0.65))
    top, low = SKIES[sky]
    for y in range(horizon):  # vertical sky gradient
        t = y / max(1, horizon - 1)
        draw.line([0, y, big, y], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, low)))
    g = GROUNDS[ground]
    draw.rectangle([0, horizon, big, big], fill=tuple(min(255, max(0, c + rng.randint(-20, 20))) for c in g))
    n = rng.choice([2, 2, 3])
    places = rng.sample(PLACES, n)
    pool = list(SKY_THINGS) + (list(WATER_THINGS) * 2 if ground == "water" else list(LAND_THINGS))
    things = []
    for place in places:
        thing = rng.choice(pool)
        paint = rng.choice([p for p in PAINTS if (p, thing) not in ((o["paint"], o["thing"]) for o in things)])
        things.append({"thing": thing, "paint": paint, "place": place})
    things.sort(key=lambda o: PLACES.index(o["place"]))
    third = big / 3
    for o in things:
        cx = third * (PLACES.index(o["place"]) + 0.5) + rng.uniform(-0.12, 0.12) * third
        s = third * rng.uniform(0.75, 0.95)
        base = horizon + rng.uniform(0.3, 0.7) * (big - horizon)
        sky_y = horizon * rng.uniform(0.3, 0.55)
        _draw_thing(draw, o["thing"], cx, base, s, PAINTS[o["paint"]], sky_y)
    return img.resize((size, size), Image.Resampling.LANCZOS), _captions(sky, ground, things)


def write_scenes_dataset(
    root: str | Path, train_images: int = 1500, val_images: int = 500, size: int = 48, seed: int = 0
) -> Path:
    """Write ``root/{train,val}2017/*.jpg`` and ``root/annotations/captions_{train,val}2017.json``
    (five captions per image); the same seed gives the same files."""
    root = Path(root)
    ann_id = 0
    for split, count in (("train", train_images), ("val", val_images)):
        rng = random.Random(f"scenes-{seed}-{split}")
        offset = 100000 if split == "train" else 900000
        items = (draw_scene(rng, size) for _ in range(count))
        ann_id = write_coco_split(
            root, split, items, lambda i, offset=offset: offset + i, quality=90, first_annotation_id=ann_id
        )
    return root
