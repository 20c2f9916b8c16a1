"""Both COCO layouts, read from small files the test writes, and their bad-input cases."""

import json
import logging

import pytest
from PIL import Image

from multivic.data.coco import read_coco, read_coco_karpathy, read_coco_official
from multivic.errors import DataError


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)


@pytest.fixture
def official(tmp_path):
    for i in (1, 2, 3):
        _image(tmp_path / "val2017" / f"{i:012d}.jpg")
    data = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in (1, 2, 3)],
        "annotations": [
            {"id": 10, "image_id": 1, "caption": "A red circle."},
            {"id": 11, "image_id": 1, "caption": "a circle that is red"},
            {"id": 12, "image_id": 2, "caption": "two squares"},
            {"id": 13, "image_id": 2, "caption": "   "},
        ],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "captions_val2017.json").write_text(json.dumps(data))
    return tmp_path


def test_official_layout(official, caplog):
    with caplog.at_level(logging.WARNING, logger="multivic"):
        coco = read_coco_official(official, "val")
    assert [p.name for p in coco.image_paths] == ["000000000001.jpg", "000000000002.jpg"]
    assert coco.captions == [["A red circle.", "a circle that is red"], ["two squares"]]
    assert coco.flat() == (["A red circle.", "a circle that is red", "two squares"], [0, 0, 1])
    assert "skipped 1 images without a caption and 1 empty captions" in caplog.text


def test_official_errors(official):
    path = official / "annotations" / "captions_val2017.json"
    data = json.loads(path.read_text())
    data["annotations"].append({"id": 99, "image_id": 7, "caption": "ghost"})
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"annotation 99 names image_id 7"):
        read_coco_official(official, "val")
    path.write_text(json.dumps({"info": {}}))
    with pytest.raises(DataError, match="is not a COCO caption file"):
        read_coco_official(official, "val")
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_coco_official(official, "val")
    with pytest.raises(DataError, match="captions_train"):
        read_coco_official(official, "train")


def test_missing_image_file_is_named(official):
    (official / "val2017" / "000000000002.jpg").unlink()
    with pytest.raises(DataError, match=r"image .*000000000002.jpg named in .* does not exist"):
        read_coco_official(official, "val")


def test_karpathy_layout(tmp_path):
    entries = []
    for n, split in enumerate(["train", "restval", "val", "test", "test"]):
        folder = "train2014" if split == "train" else "val2014"
        _image(tmp_path / folder / f"img{n}.jpg")
        entries.append({"filepath": folder, "filename": f"img{n}.jpg", "split": split, "cocoid": n,
                        "sentences": [{"raw": f"caption {n} a", "tokens": []}, {"raw": "", "tokens": ["tok", str(n)]}]})
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    train = read_coco_karpathy(tmp_path, "train")
    assert [p.name for p in train.image_paths] == ["img0.jpg", "img1.jpg"]  # train + restval
    assert train.captions[0] == ["caption 0 a", "tok 0"]
    assert len(read_coco(tmp_path, "test")) == 2 and len(read_coco(tmp_path, "val")) == 1
    with pytest.raises(DataError, match="unknown Karpathy split"):
        read_coco_karpathy(tmp_path, "dev")
