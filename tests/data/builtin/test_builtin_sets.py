"""The second built-in data set of each modality (glyphs, sounds22k, scenes): written in the real
on-disk layout, read by the real loaders, deterministic, separable by a simple reference that
knows nothing of the generator, and read by the quick-start recipes unchanged but for
``data.builtin=NAME``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from multivic.build import build_collate, build_data, build_train_dataset, fit_modalities
from multivic.config import load_config
from multivic.data.builtin import (
    GLYPH_CLASSES,
    SHAPE_CLASSES,
    SOUND_CLASSES,
    SOUNDS22K_CLASSES,
    builtin_root,
    write_glyphs_dataset,
    write_scenes_dataset,
    write_sounds22k_dataset,
)
from multivic.data.builtin.captions import COLOURS, SHAPES
from multivic.data.builtin.location import ensure_written
from multivic.data.builtin.scenes import GROUNDS, SKIES
from multivic.data.formats import builtin_formats
from multivic.data.formats.coco import CocoFormat
from multivic.data.formats.esc50 import ESC50Format
from multivic.data.formats.image_folder import ImageFolderFormat
from multivic.data.readers.coco import read_coco
from multivic.modalities.waveform import WaveformModality

REPO = Path(__file__).resolve().parents[3]
# Small counts for tests; the registered defaults are for the recipes.
SMALL = {
    "glyphs": lambda root, seed=0: write_glyphs_dataset(root, train_per_class=20, val_per_class=8, seed=seed),
    "sounds22k": lambda root, seed=0: write_sounds22k_dataset(root, clips_per_class=10, seed=seed),
    "scenes": lambda root, seed=0: write_scenes_dataset(root, train_images=40, val_images=20, seed=seed),
}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("builtin_sets")
    return {name: write(base / name) for name, write in SMALL.items()}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_each_is_registered_with_its_format():
    formats = builtin_formats()
    assert (formats["glyphs"], formats["sounds22k"], formats["scenes"]) == ("image_folder", "esc50", "coco")
    assert ImageFolderFormat.builtins["glyphs"] is write_glyphs_dataset
    assert ESC50Format.builtins["sounds22k"] is write_sounds22k_dataset
    assert CocoFormat.builtins["scenes"] is write_scenes_dataset


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_bytes_other_seed_other_bytes(name, tmp_path):
    def tiny(root: Path, seed: int) -> Path:
        if name == "glyphs":
            return write_glyphs_dataset(root, train_per_class=2, val_per_class=1, seed=seed)
        if name == "sounds22k":
            return write_sounds22k_dataset(root, clips_per_class=2, seed=seed)
        return write_scenes_dataset(root, train_images=3, val_images=2, seed=seed)

    a, b, c = _digest(tiny(tmp_path / "a", 0)), _digest(tiny(tmp_path / "b", 0)), _digest(tiny(tmp_path / "c", 1))
    assert a == b and len(a) > 4
    assert a.keys() == c.keys() and a != c


# --- glyphs -----------------------------------------------------------------------------------


def test_glyphs_are_an_image_folder_of_eight_other_classes_at_48_px(written):
    fmt = ImageFolderFormat(written["glyphs"])
    train, val = fmt.split("train", {}), fmt.split("val", {})
    assert train.classes == val.classes == sorted(GLYPH_CLASSES) and len(GLYPH_CLASSES) == 8
    assert not set(GLYPH_CLASSES) & set(SHAPE_CLASSES)
    assert (len(train), len(val)) == (8 * 20, 8 * 8)
    assert np.bincount(train.targets).tolist() == [20] * 8
    image = train[0]["image"]
    assert image.size == (48, 48) and image.mode == "RGB"


def _glyph_feature(path: Path) -> np.ndarray:
    """Rotation-invariant outline statistics of the pixels far from the border's median lightness:
    edge length per sqrt(area), spread, and a histogram of distances from their centroid."""
    lum = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255
    border = np.concatenate([lum[0], lum[-1], lum[:, 0], lum[:, -1]])
    fg = np.abs(lum - np.median(border)) > 0.25
    ys, xs = np.nonzero(fg)
    area = fg.sum() + 1
    r = np.hypot(ys - ys.mean(), xs - xs.mean()) / np.sqrt(area) if len(ys) else np.zeros(1)
    edges = (fg[1:] != fg[:-1]).sum() + (fg[:, 1:] != fg[:, :-1]).sum()
    return np.concatenate([[edges / np.sqrt(area), r.std()], np.histogram(r, bins=10, range=(0, 2.5))[0] / area])


def _nearest_centroid_accuracy(train_x, train_y, test_x, test_y) -> float:
    train_x, test_x, train_y, test_y = map(np.asarray, (train_x, test_x, train_y, test_y))
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
    zt, zv = (train_x - mu) / sd, (test_x - mu) / sd
    centroids = np.stack([zt[train_y == c].mean(0) for c in np.unique(train_y)])
    return float((np.argmin(((zv[:, None] - centroids) ** 2).sum(-1), 1) == test_y).mean())


def test_glyph_classes_are_told_apart_by_outline_statistics(written):
    fmt = ImageFolderFormat(written["glyphs"])
    train, val = fmt.split("train", {}), fmt.split("val", {})
    files = lambda s: [p for p, _ in s.reader.samples]  # noqa: E731
    acc = _nearest_centroid_accuracy(
        [_glyph_feature(p) for p in files(train)], train.targets, [_glyph_feature(p) for p in files(val)], val.targets
    )
    assert acc > 0.45, acc  # chance is 1/8; 0.69-0.75 measured over seeds 0-2
    # Colour alone says nothing: per-class mean colours are all close to one another.
    means = np.stack(
        [
            np.mean(
                [np.asarray(Image.open(p), dtype=np.float32).mean((0, 1)) for p, y in train.reader.samples if y == c], 0
            )
            for c in range(8)
        ]
    )
    assert np.ptp(means, 0).max() < 60


# --- sounds22k --------------------------------------------------------------------------------


def test_sounds22k_is_esc50_at_22_05_khz_with_clips_under_a_second(written):
    root = written["sounds22k"]
    with (root / "meta" / "esc50.csv").open() as f:
        header = f.readline().strip().split(",")
    assert header[:4] == ["filename", "fold", "target", "category"]
    files = sorted((root / "audio").glob("*.wav"))
    assert len(files) == 10 * 10
    durations = []
    for path in files:
        info = soundfile.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        durations.append(info.frames / info.samplerate)
    assert 0.5 <= min(durations) and max(durations) < 0.9 + 1e-3 and np.std(durations) > 0.05
    assert len(SOUNDS22K_CLASSES) == 10 and not set(SOUNDS22K_CLASSES) & set(SOUND_CLASSES)


def test_the_loader_resamples_to_the_recipe_rate_and_the_views_pad_short_clips(written):
    waveform = WaveformModality(sample_rate=8000, crop_seconds=1.0)
    fmt = ESC50Format(written["sounds22k"], test_fold=5)
    train, val = fmt.split("train", {"waveform": waveform}), fmt.split("val", {"waveform": waveform})
    assert train.classes == list(SOUNDS22K_CLASSES)
    assert (len(train), len(val)) == (10 * 8, 10 * 2)
    for i in (0, 17, 60, 79):
        path = train.reader.files[i][0]
        native, rate = soundfile.read(str(path), dtype="float32")
        wave = train[i]["waveform"]
        assert rate == 22050 and wave.dtype == torch.float32
        assert abs(wave.shape[0] - len(native) * 8000 / 22050) <= 1  # resampled, not truncated or relabelled
        # Same sound: the 8 kHz clip's energy matches the native clip's (all classes lie below 3.5 kHz).
        assert float(wave.pow(2).mean()) == pytest.approx(float(np.mean(native**2)), rel=0.1)
        padded = waveform.eval_view()(wave)
        assert (
            padded.shape == (8000,) and torch.equal(padded[: wave.shape[0]], wave) and not padded[wave.shape[0] :].any()
        )
        assert waveform.train_view()(wave).shape == (8000,)


def _sound_feature(wave: torch.Tensor, rate: int = 8000) -> np.ndarray:
    """Log band energies (16 bands up to 4 kHz), normalised by the total, and how much the
    loudness envelope fluctuates."""
    x = wave.numpy()
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / rate)
    bands = np.array([spectrum[(freqs >= lo) & (freqs < lo + 250)].sum() for lo in range(0, 4000, 250)])
    bands = np.log(bands / bands.sum() + 1e-8)
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    env = np.log(frames.std(1) + 1e-6)
    return np.concatenate([bands, [env.std(), np.abs(np.diff(env)).mean()]])


def test_sound_classes_are_told_apart_at_8_khz_by_band_energies(written):
    waveform = WaveformModality(sample_rate=8000, crop_seconds=1.0)
    fmt = ESC50Format(written["sounds22k"], test_fold=5)
    train, val = fmt.split("train", {"waveform": waveform}), fmt.split("val", {"waveform": waveform})
    acc = _nearest_centroid_accuracy(
        [_sound_feature(train[i]["waveform"]) for i in range(len(train))],
        train.targets,
        [_sound_feature(val[i]["waveform"]) for i in range(len(val))],
        val.targets,
    )
    assert acc > 0.5, acc  # chance is 1/10; 0.75-0.85 measured over seeds 0-2


# --- scenes -----------------------------------------------------------------------------------


def test_scenes_follow_the_official_coco_layout_with_five_captions_per_48_px_image(written):
    root = written["scenes"]
    for split, count in (("train", 40), ("val", 20)):
        data = json.loads((root / "annotations" / f"captions_{split}2017.json").read_text())
        assert len(data["images"]) == count and len(data["annotations"]) == 5 * count
        coco = read_coco(root, split, None, 5)
        assert len(coco) == count and all(len(c) == 5 and len(set(c)) == 5 for c in coco.captions)
        assert all(p.parent.name == f"{split}2017" and p.suffix == ".jpg" for p in coco.image_paths)
        assert Image.open(coco.image_paths[0]).size == (48, 48)
    retrieval = CocoFormat(root).retrieval_set(
        {
            "image": build_data(
                load_config(REPO / "recipes/quickstart/coco_retrieval.yaml", [f"data.root={root}", "data.builtin=null"])
            ).modalities["image"]
        }
    )
    assert len(retrieval.first[1]) == 20 and len(retrieval.second[1]) == 100


def test_scene_vocabulary_differs_from_the_captions_set():
    import random

    from multivic.data.builtin.scenes import draw_scene

    rng = random.Random(5)
    words = {w for _ in range(60) for caption in draw_scene(rng)[1] for w in caption.replace(":", "").split()}
    assert not words & (set(SHAPES) | set(COLOURS))


def test_the_sky_a_caption_names_is_the_sky_drawn(written):
    """An independent check that captions describe their image: the sky word matches the
    nearest of the three sky colours at the top of the image, and the ground word the bottom."""
    coco = read_coco(written["scenes"], "train", None, 5)
    agree = 0
    for path, captions in zip(coco.image_paths, coco.captions):
        pixels = np.asarray(Image.open(path), dtype=np.float32)
        top, bottom = pixels[:3].reshape(-1, 3).mean(0), pixels[-3:].reshape(-1, 3).mean(0)
        sky = min(SKIES, key=lambda s: np.abs(top - SKIES[s][0]).sum())
        ground = min(GROUNDS, key=lambda g: np.abs(bottom - GROUNDS[g]).sum())
        agree += captions[1].startswith(f"a {sky} scene") and f"drawing of {ground} " in captions[4]
    assert agree >= 0.9 * len(coco)


# --- the quick-start recipes, unchanged but for data.builtin ----------------------------------


@pytest.mark.parametrize(
    "recipe, name, side_shapes",
    [
        ("image_image.yaml", "glyphs", [(4, 3, 32, 32), (4, 3, 32, 32)]),
        ("r50_vits.yaml", "glyphs", [(4, 3, 32, 32), (4, 3, 32, 32)]),
        ("wave_spec.yaml", "sounds22k", [(4, 8000), (4, 8000)]),
        ("coco_retrieval.yaml", "scenes", [(4, 3, 32, 32), None]),
    ],
)
def test_the_quickstart_recipe_reads_the_second_set_with_one_override(recipe, name, side_shapes, tmp_path):
    # Written small at the place the recipe looks for it (the conftest's private MULTIVIC_DATA_DIR).
    root = ensure_written(builtin_root(f"{name}-v1"), SMALL[name])
    cfg = load_config(REPO / "recipes" / "quickstart" / recipe, [f"data.builtin={name}", "data.num_workers=0"])
    data = build_data(cfg)
    assert data.format.root == root
    fit_modalities(cfg, data, lambda m: tmp_path / m)
    train_set = build_train_dataset(cfg, data)
    collate = build_collate(cfg, data) or torch.utils.data.default_collate
    torch.manual_seed(0)
    batch = collate([train_set[i] for i in range(4)])
    for side, shape in zip(batch, side_shapes):
        if shape is not None:
            assert tuple(side.shape) == shape and torch.isfinite(side).all()
    if name == "scenes":  # the text side: the captions tokenised with a vocabulary fitted on them
        assert batch[1]["input_ids"].shape[0] == 4
        assert data.modalities["text"].encoder_kwargs()["vocab_size"] > 30
    data.format.check_evaluation_data(data.modalities)
