"""Data sets multivic draws itself, written to disk in a real on-disk layout.

Two per modality, drawn by independent generators, so that a recipe can be checked on a
second data set it was not tuned on: shapes / glyphs (ImageFolder), sounds / sounds22k
(ESC-50 layout), captions / scenes (COCO captions layout).
"""

from multivic.data.builtin.glyphs import GLYPH_CLASSES, write_glyphs_dataset
from multivic.data.builtin.location import builtin_root
from multivic.data.builtin.scenes import write_scenes_dataset
from multivic.data.builtin.shapes import SHAPE_CLASSES, write_shapes_dataset
from multivic.data.builtin.sounds import SOUND_CLASSES, write_sounds_dataset
from multivic.data.builtin.sounds22k import SOUNDS22K_CLASSES, write_sounds22k_dataset

__all__ = [
    "GLYPH_CLASSES",
    "SHAPE_CLASSES",
    "SOUNDS22K_CLASSES",
    "SOUND_CLASSES",
    "builtin_root",
    "write_glyphs_dataset",
    "write_scenes_dataset",
    "write_shapes_dataset",
    "write_sounds22k_dataset",
    "write_sounds_dataset",
]
