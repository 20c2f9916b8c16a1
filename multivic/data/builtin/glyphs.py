"""A second procedurally drawn image data set, of glyph classes, written as an ImageFolder.

Independent of :mod:`multivic.data.builtin.shapes` by construction: other classes (none of
the shapes), 48 px instead of 32, a numpy generator instead of :mod:`random`, textured
backgrounds (smooth noise, stripes, checks) instead of flat or gradient ones, and several
distractor blobs. Each glyph is defined in unit coordinates, mapped by a random affine
(rotation, scale, slight shear and stretch, position), rasterised as a coverage mask and
composited in floating point. Its colour is random but its lightness always contrasts with the
background's, so the class is told by outline, not colour.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

GLYPH_CLASSES: tuple[str, ...] = ("arrow", "heart", "crescent", "hexagon", "spiral", "zigzag", "tee", "bowtie")
_OVERSAMPLE = 4  # masks are drawn this much larger, then box-filtered: soft edges


def _unit_outline(glyph: str) -> list[tuple[str, list[tuple[float, float]], float]]:
    """The glyph as primitives in [-1, 1]²: ("fill", points, 0) / ("erase", points, 0) polygons,
    or ("stroke", points, width) polylines (width in unit coordinates)."""
    if glyph == "arrow":
        pts = [(-1, -0.22), (0.15, -0.22), (0.15, -0.6), (1, 0), (0.15, 0.6), (0.15, 0.22), (-1, 0.22)]
        return [("fill", pts, 0.0)]
    if glyph == "heart":
        ts = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        x = 16 * np.sin(ts) ** 3
        y = -(13 * np.cos(ts) - 5 * np.cos(2 * ts) - 2 * np.cos(3 * ts) - np.cos(4 * ts))
        return [("fill", list(zip(x / 17, (y + 2.5) / 17)), 0.0)]
    if glyph == "crescent":
        ts = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        outer = list(zip(np.cos(ts), np.sin(ts)))
        inner = list(zip(0.45 + 0.85 * np.cos(ts), -0.1 + 0.85 * np.sin(ts)))
        return [("fill", outer, 0.0), ("erase", inner, 0.0)]
    if glyph == "hexagon":
        ts = np.arange(6) * math.pi / 3
        return [("fill", list(zip(np.cos(ts), np.sin(ts))), 0.0)]
    if glyph == "spiral":
        ts = np.linspace(0, 4.2 * math.pi, 80)
        r = 0.12 + 0.88 * ts / ts[-1]
        return [("stroke", list(zip(r * np.cos(ts), r * np.sin(ts))), 0.16)]
    if glyph == "zigzag":
        return [("stroke", [(-1, 0.55), (-0.5, -0.55), (0, 0.55), (0.5, -0.55), (1, 0.55)], 0.24)]
    if glyph == "tee":
        return [("stroke", [(-0.9, -0.8), (0.9, -0.8)], 0.36), ("stroke", [(0, -0.8), (0, 1)], 0.36)]
    if glyph == "bowtie":
        return [
            ("fill", [(-1, -0.8), (0, 0), (-1, 0.8)], 0.0),
            ("fill", [(1, -0.8), (0, 0), (1, 0.8)], 0.0),
            ("fill", [(-0.2, -0.2), (0.2, -0.2), (0.2, 0.2), (-0.2, 0.2)], 0.0),
        ]
    raise ValueError(f"unknown glyph {glyph!r}; known: {', '.join(GLYPH_CLASSES)}")


def _affine(rng: np.random.Generator, radius: float, centre: tuple[float, float]):
    angle = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(angle), math.sin(angle)
    stretch = rng.uniform(0.85, 1.15)
    shear = rng.uniform(-0.2, 0.2)
    m = np.array([[c, -s], [s, c]]) @ np.array([[stretch, shear], [0.0, 1.0 / stretch]]) * radius
    if rng.random() < 0.5:  # mirror image
        m = m @ np.diag([1.0, -1.0])
    offset = np.asarray(centre, dtype=float)

    def apply(points) -> list[tuple[float, float]]:
        p = np.asarray(points, dtype=float) @ m.T + offset
        return [(float(x), float(y)) for x, y in p]

    return apply, radius


def _mask(size: int, primitives, apply, scale: float) -> np.ndarray:
    """Coverage in [0, 1] of ``size``², rasterised at ``_OVERSAMPLE`` times the size."""
    big = size * _OVERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    k = _OVERSAMPLE
    for kind, pts, width in primitives:
        p = [(x * k, y * k) for x, y in apply(pts)]
        if kind == "stroke":
            w = max(1, int(round(width * scale * k)))
            draw.line(p, fill=255, width=w, joint="curve")
            for x, y in (p[0], p[-1]):  # round caps
                draw.ellipse([x - w / 2, y - w / 2, x + w / 2, y + w / 2], fill=255)
        else:
            draw.polygon(p, fill=255 if kind == "fill" else 0)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def _hued(rng: np.random.Generator, lightness: float) -> np.ndarray:
    """An RGB colour of random hue and saturation whose mean channel value is ``lightness``."""
    tint = rng.uniform(-1, 1, 3)
    tint -= tint.mean()
    colour = lightness + tint * rng.uniform(0.05, 0.3)
    return np.clip(colour, 0, 1)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A zero-mean texture [size, size] in about [-1, 1]: smooth noise, stripes or checks."""
    kind = rng.integers(0, 3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == 0:
        cells = int(rng.integers(3, 9))
        coarse = rng.standard_normal((cells, cells)).astype(np.float32)
        img = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        t = np.asarray(img)
        return t / (np.abs(t).max() + 1e-6)
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(4, 12)
    phase = rng.uniform(0, 2 * math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    if kind == 1:
        return np.sin(2 * math.pi * u / period + phase)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    return np.sign(np.sin(2 * math.pi * u / period + phase) * np.sin(2 * math.pi * v / period))


def draw_glyph_image(glyph: str, rng: np.random.Generator, size: int = 48) -> Image.Image:
    """One RGB image of ``glyph`` over a textured background with distractor blobs."""
    dark_bg = rng.random() < 0.5
    bg_light = rng.uniform(0.08, 0.35) if dark_bg else rng.uniform(0.65, 0.92)
    fg_light = rng.uniform(0.7, 0.95) if dark_bg else rng.uniform(0.05, 0.3)
    texture = _texture(rng, size)[..., None] * rng.uniform(0.03, 0.12)
    tint = _hued(rng, bg_light) - bg_light
    img = np.clip(bg_light + tint + texture * (1 + rng.uniform(-0.5, 0.5, 3)), 0, 1)

    # Distractors: small irregular blobs at any lightness, drawn under the glyph.
    for _ in range(int(rng.integers(2, 6))):
        n = int(rng.integers(5, 9))
        ts = np.sort(rng.uniform(0, 2 * math.pi, n))
        rs = rng.uniform(0.5, 1.0, n)
        blob = list(zip(rs * np.cos(ts), rs * np.sin(ts)))
        r = rng.uniform(0.05, 0.13) * size
        apply, scale = _affine(rng, r, (rng.uniform(0, size), rng.uniform(0, size)))
        alpha = _mask(size, [("fill", blob, 0.0)], apply, scale)[..., None]
        img = img * (1 - alpha) + _hued(rng, rng.uniform(0.1, 0.9)) * alpha

    r = rng.uniform(0.26, 0.4) * size
    centre = (rng.uniform(r, size - r), rng.uniform(r, size - r))
    apply, scale = _affine(rng, r, centre)
    alpha = _mask(size, _unit_outline(glyph), apply, scale)[..., None]
    img = img * (1 - alpha) + _hued(rng, fg_light) * alpha
    img = img + rng.standard_normal(img.shape) * rng.uniform(0.0, 0.03)  # sensor noise
    return Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8))


def write_glyphs_dataset(
    root: str | Path, train_per_class: int = 300, val_per_class: int = 75, size: int = 48, seed: int = 0
) -> Path:
    """Write ``root/{train,val}/<glyph>/<index>.png``; the same seed gives the same files."""
    root = Path(root)
    for split_index, (split, count) in enumerate((("train", train_per_class), ("val", val_per_class))):
        for label, glyph in enumerate(GLYPH_CLASSES):
            folder = root / split / glyph
            folder.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng([seed, split_index, label, 0x61F])
            for i in range(count):
                draw_glyph_image(glyph, rng, size).save(folder / f"{i:05d}.png")
    return root
