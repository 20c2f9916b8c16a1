"""Both COCO layouts, read from small files the test writes, and their bad-input cases."""

import json
import logging

import pytest
from PIL import Image

from multivic.data.readers.coco import read_coco, read_coco_karpathy, read_coco_official
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
        entries.append(
            {
                "filepath": folder,
                "filename": f"img{n}.jpg",
                "split": split,
                "cocoid": n,
                "sentences": [{"raw": f"caption {n} a", "tokens": []}, {"raw": "", "tokens": ["tok", str(n)]}],
            }
        )
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": entries}))
    train = read_coco_karpathy(tmp_path, "train")
    assert [p.name for p in train.image_paths] == ["img0.jpg", "img1.jpg"]  # train + restval
    assert train.captions[0] == ["caption 0 a", "tok 0"]
    assert len(read_coco(tmp_path, "test")) == 2 and len(read_coco(tmp_path, "val")) == 1
    with pytest.raises(DataError, match="unknown Karpathy split"):
        read_coco_karpathy(tmp_path, "dev")


def _write_official(root, split, year, captions):
    """captions_{split}{year}.json with one image per caption list (ids from 1), and the images."""
    folder = f"{split}{year}"
    images, annotations = [], []
    for i, caps in enumerate(captions, start=1):
        _image(root / folder / f"{i:012d}.jpg")
        images.append({"id": i, "file_name": f"{i:012d}.jpg"})
        annotations += [{"id": 100 * i + n, "image_id": i, "caption": c} for n, c in enumerate(caps)]
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"captions_{folder}.json").write_text(
        json.dumps({"images": images, "annotations": annotations})
    )


def test_mixed_releases_are_an_error(tmp_path):
    # val2017 was drawn from train2014 + val2014: training on train2014 and testing on val2017 tests on training images.
    _write_official(tmp_path, "train", 2014, [["a"]])
    _write_official(tmp_path, "val", 2017, [["b"]])
    mixed = r"holds captions_train2014.json and captions_val2017.json, from different COCO releases: .*set data.year"
    for split in ("train", "val"):
        with pytest.raises(DataError, match=mixed):
            read_coco_official(tmp_path, split)
    with pytest.raises(DataError, match=mixed):
        read_coco(tmp_path, "test")
    # Naming the release reads it, and the split it lacks is an error naming the missing file.
    assert len(read_coco(tmp_path, "train", year=2014)) == 1
    with pytest.raises(
        DataError, match=r"captions_val2014.json not found \(it holds captions_train2014.json, captions_val2017.json\)"
    ):
        read_coco(tmp_path, "test", year=2014)


def test_newest_release_with_both_splits_is_chosen(tmp_path):
    _write_official(tmp_path, "train", 2014, [["a"], ["b"]])
    _write_official(tmp_path, "val", 2014, [["c"]])
    _write_official(tmp_path, "val", 2017, [["d"], ["e"], ["f"]])  # 2017 lacks train: not a release to use
    test = read_coco(tmp_path, "test")
    assert test.captions == [["c"]] and test.image_paths[0].parent.name == "val2014"
    assert read_coco(tmp_path, "train").image_paths[0].parent.name == "train2014"
    _write_official(tmp_path, "train", 2017, [["g"]])  # now 2017 is complete, and newer
    assert read_coco(tmp_path, "test").captions == [["d"], ["e"], ["f"]]
    assert read_coco(tmp_path, "test", year=2014).captions == [["c"]]
    with pytest.raises(DataError, match=r"captions_val2015.json not found"):
        read_coco(tmp_path, "test", year=2015)


def test_one_split_only_reads_its_newest_release(tmp_path):
    # An evaluation-only folder: nothing to mix with, so val is read; train names the file it lacks.
    _write_official(tmp_path, "val", 2014, [["a"]])
    _write_official(tmp_path, "val", 2017, [["b"]])
    assert read_coco(tmp_path, "test").captions == [["b"]]
    with pytest.raises(
        DataError, match=r"captions_train2017.json not found \(the folder holds captions_val2017.json only\)"
    ):
        read_coco(tmp_path, "train")
    with pytest.raises(DataError, match=r"is .* a COCO folder"):
        read_coco(tmp_path / "empty", "train")


def test_year_and_the_karpathy_layout(tmp_path):
    _image(tmp_path / "val2014" / "img.jpg")
    entry = {"filepath": "val2014", "filename": "img.jpg", "split": "test", "sentences": [{"raw": "x"}]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [entry]}))
    assert len(read_coco(tmp_path, "test", year=2014)) == 1  # the Karpathy split is over the 2014 images
    with pytest.raises(
        DataError, match=r"Karpathy split dataset_coco.json, which is over the 2014 images only: year 2017"
    ):
        read_coco(tmp_path, "test", year=2017)


def test_captions_per_image_keeps_the_first_k(tmp_path, caplog):
    seven = [f"seven {n}" for n in range(7)]
    five = [f"five {n}" for n in range(5)]
    _write_official(tmp_path, "val", 2017, [seven, ["short 0", "", "short 1"], five])
    _write_official(tmp_path, "train", 2017, [seven])
    with caplog.at_level(logging.WARNING, logger="multivic"):
        test = read_coco(tmp_path, "test", captions_per_image=5)
    assert test.captions == [seven[:5], ["short 0", "short 1"], five]  # file order; the empty one is not counted
    assert "1 images have fewer than 5 captions; kept with the ones they have" in caplog.text
    assert read_coco(tmp_path, "train").captions == [seven]  # default: all captions
    assert read_coco(tmp_path, "train", captions_per_image=None).captions == [seven]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(DataError, match="captions_per_image must be a positive integer"):
            read_coco(tmp_path, "test", captions_per_image=bad)


def test_captions_per_image_in_the_karpathy_layout(tmp_path):
    _image(tmp_path / "val2014" / "img.jpg")
    sentences = [{"raw": f"cap {n}"} for n in range(6)]
    entry = {"filepath": "val2014", "filename": "img.jpg", "split": "test", "sentences": sentences}
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [entry]}))
    assert read_coco(tmp_path, "test", captions_per_image=5).captions == [[f"cap {n}" for n in range(5)]]
    assert len(read_coco(tmp_path, "test").captions[0]) == 6


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../etc/passwd", "link.jpg"])
def test_a_file_name_outside_the_root_is_refused_naming_the_entry(official, tmp_path_factory, name):
    """A caption file from someone else opens nothing outside data.root (it opened /etc/passwd)."""
    outside = tmp_path_factory.mktemp("elsewhere") / "secret.jpg"
    _image(outside)
    (official / "val2017" / "link.jpg").symlink_to(outside)
    path = official / "annotations" / "captions_val2017.json"
    data = json.loads(path.read_text())
    data["images"][0]["file_name"] = name
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"images\[0\] \(file_name\).*(absolute path|, outside )"):
        read_coco_official(official, "val")


@pytest.mark.parametrize("images", [[["not", "an", "object"]], [{"id": [1], "file_name": "a.jpg"}], [{"id": 1}]])
def test_malformed_image_entries_are_one_line_errors(official, images):
    path = official / "annotations" / "captions_val2017.json"
    path.write_text(json.dumps({"images": images, "annotations": [{"image_id": 1, "caption": "x"}]}))
    with pytest.raises(DataError, match=r"images\[0\] lacks"):
        read_coco_official(official, "val")
