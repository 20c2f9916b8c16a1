"""image_files / audio_files: a folder of files without labels trains; evaluation skips the
probes (saying so) and still measures collapse; the files can be sharded."""

import json
import shutil

import numpy as np
import pytest
import soundfile
import torch

from multivic.commands.shard import write_shards
from multivic.data.formats.files import AudioFilesFormat, ImageFilesFormat
from multivic.data.formats.webdataset import WebDatasetFormat
from multivic.errors import DataError
from multivic.modalities import create_modality
from tests.helpers.flat_images import write_flat_images


@pytest.fixture
def flat_images(tmp_path, tiny_images):
    return write_flat_images(tmp_path / "photos", tiny_images)


def test_files_of_the_folder_are_every_image_and_stay_inside_it(flat_images, tmp_path):
    image = {"image": create_modality("image", {"image_size": 16})}
    files = ImageFilesFormat(flat_images).split("train", image)
    assert len(files) == len(list(flat_images.rglob("*.png"))) and set(files[0]) == {"image"}
    secret = tmp_path / "secret.png"
    shutil.copy(files.path(0), secret)
    (flat_images / "link.png").symlink_to(secret)
    with pytest.raises(DataError, match=r"image file .*link.png resolves to .*secret.png, outside"):
        ImageFilesFormat(flat_images).split("train", image)


def test_an_empty_folder_says_what_it_expected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no waveform files \(.wav, .flac, .ogg"):
        AudioFilesFormat(tmp_path / "empty").split("train", {"waveform": create_modality("waveform")})


def test_a_folder_of_audio_is_sharded_with_its_own_bytes(tmp_path):
    root = tmp_path / "clips"
    root.mkdir()
    for i in range(5):
        soundfile.write(str(root / f"c{i}.wav"), np.full(800, i / 10, dtype="float32"), 8000)
    write_shards(str(root), tmp_path / "shards", format_name="audio_files", options={"sample_rate": 8000})
    index = json.loads((tmp_path / "shards" / "shards.json").read_text())
    assert index["protocol"] == "unlabelled" and index["splits"]["train"][0]["samples"] == 5
    wave = create_modality("waveform", {"sample_rate": 8000})
    shards = WebDatasetFormat(tmp_path / "shards").split("train", {"waveform": wave})
    assert torch.equal(shards[3]["waveform"], wave.read_file(root / "c3.wav"))  # the file's own bytes
