"""A procedurally drawn image data set of shape classes, written as an ImageFolder.

Each image holds one large shape whose class is the label, drawn with a random colour,
size, position and rotation over a random background (flat or a two-colour gradient), with
clutter (small lines and dots) on top. Everything except the shape's outline varies, so a
representation has to capture geometry to classify well; a random network does poorly.
"""

from __future__ import annotations

import colorsys
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
_SUPERSAMPLE = 3  # draw large, then downsample: anti-aliased edges without extra libraries


def _random_colour(rng: random.Random, light: bool) -> tuple[int, int, int]:
    h = rng.random()
    s = rng.uniform(0.4, 1.0)
    v = rng.uniform(0.75, 1.0) if light else rng.uniform(0.1, 0.45)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _background(rng: random.Random, size: int, light: bool) -> Image.Image:
    c1, c2 = _random_colour(rng, light), _random_colour(rng, light)
    if rng.random() < 0.5:
        return Image.new("RGB", (size, size), c1)
    # A linear gradient from c1 to c2 along a random direction.
    angle = rng.uniform(0, 2 * math.pi)
    gx, gy = math.cos(angle), math.sin(angle)
    small = 16
    grad = Image.new("RGB", (small, small))
    px = grad.load()
    for y in range(small):
        for x in range(small):
            t = ((x / (small - 1) - 0.5) * gx + (y / (small - 1) - 0.5) * gy) / math.sqrt(0.5) * 0.5 + 0.5
            t = min(max(t, 0.0), 1.0)
            px[x, y] = tuple(int(a + (b - a) * t) for a, b in zip(c1, c2))
    return grad.resize((size, size), Image.Resampling.BILINEAR)


def _polygon(cx: float, cy: float, radii: list[float], rotation: float) -> list[tuple[float, float]]:
    k = len(radii)
    return [
        (cx + r * math.cos(rotation + 2 * math.pi * i / k), cy + r * math.sin(rotation + 2 * math.pi * i / k))
        for i, r in enumerate(radii)
    ]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, rot: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ring":
        w = r * 0.38
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, int(w)))
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, [r * 0.95] * 4, rot), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, [r] * 3, rot), fill=fill)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, [r, r * 0.42] * 5, rot), fill=fill)
    elif shape == "cross":
        t = 0.33
        arm = [
            (-1, -t),
            (-t, -t),
            (-t, -1),
            (t, -1),
            (t, -t),
            (1, -t),
            (1, t),
            (t, t),
            (t, 1),
            (-t, 1),
            (-t, t),
            (-1, t),
        ]
        c, s = math.cos(rot), math.sin(rot)
        draw.polygon([(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in arm], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPE_CLASSES)}")


def draw_shape_image(shape: str, rng: random.Random, size: int = 64) -> Image.Image:
    """One RGB image of ``shape`` with random colour, size, position, rotation, background, clutter."""
    big = size * _SUPERSAMPLE
    light_bg = rng.random() < 0.5
    img = _background(rng, big, light_bg)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.28, 0.45) * big
    cx = rng.uniform(r, big - r)
    cy = rng.uniform(r, big - r)
    draw_shape(draw, shape, cx, cy, r, rng.uniform(0, 2 * math.pi), _random_colour(rng, not light_bg))
    for _ in range(rng.randint(1, 4)):  # clutter: thin lines and small dots of any colour
        colour = _random_colour(rng, rng.random() < 0.5)
        x0, y0 = rng.uniform(0, big), rng.uniform(0, big)
        if rng.random() < 0.5:
            x1, y1 = x0 + rng.uniform(-0.3, 0.3) * big, y0 + rng.uniform(-0.3, 0.3) * big
            draw.line([x0, y0, x1, y1], fill=colour, width=max(1, big // 48))
        else:
            d = rng.uniform(0.01, 0.04) * big
            draw.ellipse([x0 - d, y0 - d, x0 + d, y0 + d], fill=colour)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def write_shapes_dataset(
    root: str | Path, train_per_class: int = 400, val_per_class: int = 100, size: int = 32, seed: int = 0
) -> Path:
    """Write ``root/{train,val}/<shape>/<index>.png``; the same seed gives the same files."""
    root = Path(root)
    for split, count, offset in (("train", train_per_class, 0), ("val", val_per_class, 1)):
        for label, shape in enumerate(SHAPE_CLASSES):
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            rng = random.Random(f"{seed}-{split}-{shape}-{offset}")
            for i in range(count):
                draw_shape_image(shape, rng, size).save(folder / f"{i:05d}.png")
    return root
