"""Files that are valid but unusual, or hostile: 16-bit and transparent images, images over
PIL's decompression-bomb limit."""

import numpy as np
import pytest
from PIL import Image

from multivic.errors import DataError
from multivic.modalities.image import load_rgb

# -- images ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_a_16_bit_grayscale_image_is_scaled_to_8_bits_not_clipped(tmp_path, mode):
    values = np.array([[0, 257, 1000, 25700], [32768, 51400, 65278, 65535]], dtype=np.uint16)
    image = Image.new(mode, (4, 2))
    image.frombytes(values.astype(">u2" if mode.endswith("B") else "<u2").tobytes())
    path = tmp_path / "deep.png"
    image.save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")  # the file really is 16-bit

    rgb = load_rgb(path)
    assert rgb.mode == "RGB"
    pixels = np.asarray(rgb)
    expected = np.rint(values / 257).astype(np.uint8)  # 0, 1, 4, 100 / 128, 200, 254, 255
    assert (pixels[..., 0] == expected).all() and (pixels[..., 1] == expected).all() and (pixels[..., 2] == expected).all()


def test_a_16_bit_tiff_is_scaled_too(tmp_path):
    image = Image.new("I;16", (2, 2), 12850)
    image.save(tmp_path / "deep.tif")
    assert (np.asarray(load_rgb(tmp_path / "deep.tif")) == 50).all()


def test_transparent_and_palette_images_read_as_rgb(tmp_path, recwarn):
    rgba = Image.new("RGBA", (2, 2), (10, 20, 30, 0))
    rgba.save(tmp_path / "rgba.png")
    assert np.asarray(load_rgb(tmp_path / "rgba.png"))[0, 0].tolist() == [10, 20, 30]
    Image.new("LA", (2, 2), (77, 128)).save(tmp_path / "la.png")
    assert np.asarray(load_rgb(tmp_path / "la.png"))[0, 0].tolist() == [77, 77, 77]

    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
    palette.save(tmp_path / "p.png", transparency=0)
    assert np.asarray(load_rgb(tmp_path / "p.png"))[0, 0].tolist() == [200, 100, 50]
    assert not [w for w in recwarn if "Transparency" in str(w.message)]


def test_an_image_over_the_decompression_bomb_limit_is_a_one_line_data_error(tmp_path, monkeypatch):
    Image.new("RGB", (40, 30)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL refuses images over twice this
    with pytest.raises(DataError) as err:
        load_rgb(tmp_path / "huge.png")
    assert str(err.value) == (
        f"cannot read image {tmp_path / 'huge.png'}: the image is 40×30 pixels, over PIL's decompression-bomb limit; "
        "resize it or remove it"
    )
