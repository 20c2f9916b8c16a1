"""Each modality encodes one sample's value to the bytes of a shard member and decodes it back
(the contract `multivic shard` and the webdataset format rely on, plug-ins included)."""

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from multivic.errors import DataError
from multivic.modalities import Modality, create_modality
from multivic.registry import MODALITIES


def _image() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8))


VALUES = {
    "image": _image,
    "waveform": lambda: torch.randn(1234, generator=torch.Generator().manual_seed(0)),
    "text": lambda: ["a red circle", "two squares, side by side", "ünïcödé"],
}


def _same(a, b) -> bool:
    if isinstance(a, Image.Image):
        return a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("name", sorted(VALUES))
def test_a_value_round_trips_bit_for_bit(name):
    modality = create_modality(name)
    value = VALUES[name]()
    ext, data = modality.encode(value)
    assert ext in modality.member_extensions() and isinstance(data, bytes)
    assert _same(modality.decode(data, ext, "member"), value)


def test_every_registered_modality_names_its_members_and_no_two_share_one():
    seen: dict[str, str] = {}
    for name in MODALITIES.names():
        for ext in create_modality(name).member_extensions():
            assert ext not in seen, f"{name} and {seen[ext]} both read .{ext}"
            seen[ext] = name


def test_text_items_and_the_drawn_caption():
    text = create_modality("text")
    captions = VALUES["text"]()
    assert text.items(captions) == captions
    torch.manual_seed(3)
    first = text.pick(captions)
    torch.manual_seed(3)
    assert text.pick(captions) == first and first in captions
    assert create_modality("image").items("x") == ["x"]


@dataclass
class Vectors(Modality):
    """A plug-in modality with no codec of its own: tensors travel as <name>.npy."""

    name = "vectors"


@pytest.mark.parametrize("value", [torch.arange(12, dtype=torch.float32).reshape(3, 4), np.ones(5, dtype=np.int16)])
def test_a_plug_in_modality_gets_npy_members_by_default(value):
    modality = Vectors()
    ext, data = modality.encode(value)
    assert ext == "vectors.npy"
    back = modality.decode(data, ext, "member")
    assert torch.equal(back, torch.as_tensor(value))


def test_the_default_codec_refuses_what_it_cannot_write_and_never_unpickles():
    modality = Vectors()
    with pytest.raises(DataError, match="give the modality its own encode and decode"):
        modality.encode({"not": "a tensor"})
    with pytest.raises(DataError, match="give the modality its own encode and decode"):
        modality.encode(np.array([{"a": 1}], dtype=object))
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)  # a pickled member
    with pytest.raises(DataError, match="cannot read vectors member"):
        modality.decode(buffer.getvalue(), "vectors.npy", "member")


@pytest.mark.parametrize(
    "name, data, ext",
    [
        ("image", b"not an image", "png"),
        ("waveform", b"RIFF....", "wav"),
        ("text", b"{not json", "json"),
        ("text", b"[]", "json"),
    ],
)
def test_damaged_members_are_one_line_data_errors_naming_the_member(name, data, ext):
    with pytest.raises(DataError, match="000007"):
        create_modality(name).decode(data, ext, "000007.x in shard s.tar")


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("image", {"image_size": 10**6}, "image_size must be at most 8192"),
        ("waveform", {"sample_rate": 10**9}, "sample_rate must be at most 384000"),
        ("waveform", {"crop_seconds": 1e6}, "crop_seconds must be at most 600"),
        ("text", {"max_caption_tokens": 10**7}, "max_caption_tokens must be at most 8192"),
        ("text", {"tokenizer_vocab_size": 0}, "tokenizer_vocab_size must be >= 1"),
    ],
)
def test_each_modality_bounds_its_own_options(name, options, message):
    """A typo in a recipe or a tampered export (an image size of 10^6) is refused by the modality
    itself, before it costs memory; export.py keeps no list of other modalities' options."""
    with pytest.raises(ValueError, match=message):
        create_modality(name, options)


def test_an_npy_header_asking_for_more_than_the_member_holds_is_refused_before_allocating():
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)})
    with pytest.raises(DataError, match=r"cannot read vectors member: .*more than its \d+ bytes hold"):
        Vectors().decode(buffer.getvalue() + b"\0" * 16, "vectors.npy", "member")
