"""Data sets multivic draws itself, written to disk in a real on-disk layout."""

from multivic.data.builtin.location import builtin_root
from multivic.data.builtin.shapes import SHAPE_CLASSES, write_shapes_dataset
from multivic.data.builtin.sounds import SOUND_CLASSES, write_sounds_dataset

__all__ = ["SHAPE_CLASSES", "SOUND_CLASSES", "builtin_root", "write_shapes_dataset", "write_sounds_dataset"]
