"""Every registered modality and data format meets its contract."""

import dataclasses

import pytest
import torch

from multivic.data.formats import builtin_formats
from multivic.evaluation.protocols import PROTOCOLS
from multivic.modalities import Modality, create_modality
from multivic.options import option_fields
from multivic.registry import FORMATS, MODALITIES, list_encoders


@pytest.mark.parametrize("name", MODALITIES.names())
def test_every_modality(name):
    modality = create_modality(name)
    assert isinstance(modality, Modality) and modality.name == name
    assert dataclasses.is_dataclass(modality)
    batch = modality.example_batch(3)
    rows = batch.shape[0] if isinstance(batch, torch.Tensor) else next(iter(batch.values())).shape[0]
    assert rows == 3
    assert set(modality.options()) == {f.name for f in dataclasses.fields(modality) if f.init}


@pytest.mark.parametrize("name", FORMATS.names())
def test_every_format(name):
    cls = FORMATS.get(name).factory
    assert cls.name == name and cls.modalities
    assert all(m in MODALITIES for m in cls.modalities)
    assert cls.protocol in PROTOCOLS
    assert [f.name for f in dataclasses.fields(cls)][0] == "root"
    assert "root" not in {f.name for f in option_fields(cls)}
    if cls.folds:
        assert "test_fold" in {f.name for f in option_fields(cls)}


def test_builtin_data_sets_and_encoders_cover_the_builtin_modalities():
    assert builtin_formats() == {
        "shapes": "image_folder",
        "glyphs": "image_folder",
        "sounds": "esc50",
        "sounds22k": "esc50",
        "captions": "coco",
        "scenes": "coco",
    }
    for modality in ("image", "waveform", "text"):
        assert list_encoders(modality)
