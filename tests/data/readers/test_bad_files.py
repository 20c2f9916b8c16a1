"""Files that are valid but unusual, or hostile: 16-bit and transparent images, images over
PIL's decompression-bomb limit, meta CSVs with folds outside the format's folds."""

import numpy as np
import pytest
from PIL import Image

from multivic.data.formats.audio_csv import AudioCsvFormat
from multivic.data.formats.esc50 import ESC50Format
from multivic.data.readers.audio_folder import csv_audio_files
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
    assert (
        (pixels[..., 0] == expected).all() and (pixels[..., 1] == expected).all() and (pixels[..., 2] == expected).all()
    )


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


# -- folds of audio meta CSVs ------------------------------------------------------------------


def _esc50(root, folds):
    (root / "meta").mkdir(parents=True)
    rows = "".join(f"clip{i}.wav,{fold},{i % 2},class{i % 2}\n" for i, fold in enumerate(folds))
    (root / "meta" / "esc50.csv").write_text("filename,fold,target,category\n" + rows)
    return root / "meta" / "esc50.csv"


def _audio_csv(root, folds):
    root.mkdir(parents=True)
    rows = "".join(f"clips/c{i}.wav,lab{i % 2},{fold}\n" for i, fold in enumerate(folds))
    (root / "labels.csv").write_text("file,label,fold\n" + rows)
    return root / "labels.csv"


@pytest.mark.parametrize("split", ["train", "val"])
def test_esc50_refuses_a_fold_outside_its_folds(tmp_path, split):
    meta = _esc50(tmp_path, [1, 2, 3, 9, 5])
    with pytest.raises(DataError) as err:
        ESC50Format(tmp_path).split(split, {})
    assert str(err.value) == (
        f"meta CSV {meta}, row 4 (clip3.wav): fold 9 is not one of the folds 1, 2, 3, 4, 5: correct the fold column"
    )


@pytest.mark.parametrize("split", ["train", "val"])
def test_audio_csv_refuses_a_fold_outside_its_folds(tmp_path, split):
    meta = _audio_csv(tmp_path / "data", [1, 0, 3, 4, 5])
    with pytest.raises(DataError) as err:
        AudioCsvFormat(tmp_path / "data").split(split, {})
    assert str(err.value) == (
        f"meta CSV {meta}, row 2 (clips/c1.wav): fold 0 is not one of the folds 1, 2, 3, 4, 5: correct the fold column"
    )


def test_the_allowed_folds_are_the_formats(tmp_path):
    _audio_csv(tmp_path / "data", [1, 2, 3])
    with pytest.raises(DataError, match=r"row 3 \(clips/c2.wav\): fold 3 is not one of the folds 1, 2:"):
        csv_audio_files(tmp_path / "data", "labels.csv", "train", 1, folds=(1, 2))


@pytest.mark.parametrize("bad,shown", [("two", "'two'"), ("2.5", "2.5"), ("", "empty")])
def test_a_fold_that_is_not_an_integer_is_named(tmp_path, bad, shown):
    meta = _audio_csv(tmp_path / "data", [1, 2, bad, 4, 5])
    with pytest.raises(DataError) as err:
        AudioCsvFormat(tmp_path / "data").split("train", {})
    assert str(err.value) == (
        f"meta CSV {meta}, row 3 (clips/c2.wav): fold {shown} is not one of the folds 1, 2, 3, 4, 5: correct the fold "
        "column"
    )
    _esc50(tmp_path / "esc", [1, 2, bad, 4, 5])
    with pytest.raises(DataError, match=rf"row 3 \(clip2.wav\): fold {shown} is not one of the folds 1, 2, 3, 4, 5"):
        ESC50Format(tmp_path / "esc").split("val", {})


def test_integral_folds_written_as_floats_are_accepted(tmp_path):
    _audio_csv(tmp_path / "data", ["1.0", "2", "3.0", "4", "5.0"])
    files, classes = csv_audio_files(tmp_path / "data", "labels.csv", "val", 5, AudioCsvFormat.folds)
    assert [p.name for p, _ in files] == ["c4.wav"] and classes == ["lab0", "lab1"]
