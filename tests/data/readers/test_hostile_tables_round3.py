"""Round 3 of hostile inputs (issue 24), data-set tables from elsewhere: COCO caption files with a
repeated image id (counted twice in retrieval, silently), an integer of thousands of digits or
nesting 50 000 deep (tracebacks), Karpathy sentences whose tokens are not words (a traceback);
ESC-50 and audio_csv tables whose target is not a number, whose cells are empty, or that list a
clip twice (read twice, or in both train and val). Each is now a one-line DataError."""

import json

import pytest
from PIL import Image

from multivic.data.readers.audio_folder import csv_audio_files, esc50_files
from multivic.data.readers.coco import read_coco
from multivic.errors import DataError


def _coco(root, images, annotations, raw_text=None):
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    for image in images:
        Image.new("RGB", (8, 8)).save(root / "val2017" / image["file_name"])
    text = raw_text or json.dumps({"images": images, "annotations": annotations})
    (root / "annotations" / "captions_val2017.json").write_text(text)
    return root


IMAGES = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}]
CAPTIONS = [{"id": 10, "image_id": 1, "caption": "a cat"}, {"id": 11, "image_id": 2, "caption": "a dog"}]


def test_a_repeated_image_id_is_refused(tmp_path):
    root = _coco(tmp_path / "coco", [*IMAGES, {"id": 1, "file_name": "a.jpg"}], CAPTIONS)
    with pytest.raises(DataError, match=r"images\[2\] repeats the id 1 of images\[0\]"):
        read_coco(root, "val")


@pytest.mark.parametrize(
    "junk,message",
    [
        ("9" * 5000, "Exceeds the limit"),  # was: ValueError traceback
        ("[" * 50_000 + "]" * 50_000, "not valid JSON"),  # was: RecursionError traceback
    ],
)
def test_json_no_reader_can_hold_is_a_data_error(tmp_path, junk, message):
    text = json.dumps({"images": IMAGES, "annotations": CAPTIONS, "extra": "JUNK"}).replace('"JUNK"', junk)
    root = _coco(tmp_path / "coco", IMAGES, CAPTIONS, raw_text=text)
    with pytest.raises(DataError, match=f"captions_val2017.json is damaged .*{message}"):
        read_coco(root, "val")


@pytest.mark.parametrize("sentence", [{"tokens": 5}, {"tokens": ["a", ["b"]]}, {"raw": {"x": 1}}])
def test_karpathy_sentences_must_hold_words(tmp_path, sentence):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "a.jpg")
    entry = {"split": "test", "filepath": "images", "filename": "a.jpg", "sentences": [sentence]}
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [entry]}))
    with pytest.raises(DataError, match=r"images\[0\] has a sentence whose 'raw' is not text"):
        read_coco(tmp_path, "test")


def _esc50(root, rows):
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "esc50.csv").write_text("filename,fold,target,category\n" + "\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize(
    "row,message",
    [
        ("a.wav,1,abc,dog", r"row 2 \(a.wav\): target 'abc' is not a class number"),  # was: ValueError
        ("a.wav,1,1e30,dog", r"row 2 \(a.wav\): target .* is not a class number"),  # was: KeyError
        ("a.wav,1,,dog", r"row 2: its target is empty"),  # was: IntCastingNaNError
        (",1,0,dog", r"row 2: its filename is empty"),  # was: a clip named "nan"
    ],
)
def test_esc50_rows_must_name_a_clip_and_a_class(tmp_path, row, message):
    root = _esc50(tmp_path / "esc", [row, "b.wav,5,1,cat"])
    with pytest.raises(DataError, match=message):
        esc50_files(root, "train", 5)


def test_esc50_lists_each_clip_once(tmp_path):
    root = _esc50(tmp_path / "esc", ["a.wav,1,0,dog", "a.wav,1,0,dog", "b.wav,5,1,cat"])
    with pytest.raises(DataError, match=r"row 3: filename 'a.wav' is listed again \(row 2 too\)"):
        esc50_files(root, "train", 5)


@pytest.mark.parametrize(
    "rows,message",
    [
        (["b.wav,cat,1", "b.wav,cat,5"], "'b.wav' is listed again"),  # was: the clip in train and val, exit 0
        (["b.wav,cat,1", "c.wav,,5"], r"row 3: its label is empty"),  # was: TypeError in sorted()
    ],
)
def test_audio_csv_rows_are_complete_and_unique(tmp_path, rows, message):
    (tmp_path / "labels.csv").write_text("file,label,fold\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=message):
        csv_audio_files(tmp_path, "labels.csv", "train", 5)
