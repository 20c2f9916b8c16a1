"""Round 3 of hostile inputs (issue 24), shard folders from elsewhere: labels that are not class
indices (a traceback in the probe, or a hang building 10^20 class names), members that would
exhaust memory or the stack when decoded, an index whose source record is junk, and an index that
lists a shard twice (its samples silently counted double). Each is now a one-line DataError."""

import json

import pytest
from webdataset import TarWriter

from multivic.data.formats.webdataset import ShardSplit, WebDatasetFormat, decode_member, read_index
from multivic.data.streaming import Shard
from multivic.errors import DataError
from multivic.modalities import Modality, create_modality


def _shards(folder, labels, classes=("a", "b"), extra=None):
    """One train and one val shard of samples with these .cls bytes (and ``extra`` members), and shards.json."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        with TarWriter(str(folder / f"{split}-000000.tar"), encoder=False, mtime=0.0) as w:
            for i, label in enumerate(labels):
                w.write({"__key__": f"{i:09d}", "cls": label, "txt": b"a caption", **(extra or {})})
    index = {
        "multivic_shards": 1,
        "protocol": "classification",
        "classes": list(classes) if classes is not None else None,
        "source": {"format": "image_folder", "root": "/x", "options": {}},
        "splits": {s: [{"url": f"{s}-000000.tar", "samples": len(labels)}] for s in ("train", "val")},
    }
    (folder / "shards.json").write_text(json.dumps(index))
    return folder


def _split(folder):
    return WebDatasetFormat(folder).split("val", {"text": create_modality("text")})


@pytest.mark.parametrize(
    "label,classes",
    [
        (b"99999999999999999999", ("a", "b")),  # was: ValueError overflow in the probe's collate
        (b"-7", ("a", "b")),  # was: IndexError "Target -7 is out of bounds" in cross_entropy
        (b"2", ("a", "b")),  # a class the index does not name
        (b"99999999999999999999", None),  # was: a hang listing 10^20 class names
    ],
)
def test_a_label_that_is_not_a_class_index_is_a_data_error(tmp_path, label, classes):
    split = _split(_shards(tmp_path / "s", [b"0", b"1", label], classes))
    with pytest.raises(DataError, match=r"sample 000000002 of shard .*its .cls .* is not a class index in \[0, "):
        split.targets
    with pytest.raises(DataError, match="is not a class index"):
        split[2]
    assert split[1]["label"] == 1


class _Npy(Modality):
    name = "npy_thing"


def _npy_claiming(shape):
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 16


@pytest.mark.parametrize(
    "modality,ext,data,message",
    [
        (_Npy(), "npy_thing.npy", _npy_claiming((1 << 40,)), "more than its 144 bytes hold"),  # was: MemoryError
        (create_modality("text"), "json", b"[" * 100_000 + b"]" * 100_000, "RecursionError"),  # was: a traceback
    ],
)
def test_members_that_would_exhaust_memory_or_the_stack_are_data_errors(modality, ext, data, message):
    raw = {"__key__": "000000001", "__url__": "train-000000.tar"}
    with pytest.raises(DataError, match=f"000000001.{ext} in shard train-000000.tar: .*{message}"):
        decode_member(raw, modality, ext, data)


def _edit_index(folder, edit):
    path = folder / "shards.json"
    index = json.loads(path.read_text())
    edit(index)
    path.write_text(json.dumps(index))
    return path


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda i: i.update(source=["x"]), "'source' must be an object"),  # was: AttributeError
        (lambda i: i["source"].update(options=[1]), "'source' must be an object"),
        (lambda i: i["source"]["options"].update(test_fold="abc"), "test_fold must be a fold number"),  # ValueError
        (lambda i: i["splits"]["train"].append(dict(i["splits"]["train"][0])), "names 'train-000000.tar' again"),
        (lambda i: i["splits"]["train"].append(dict(i["splits"]["val"][0])), "names 'val-000000.tar' again"),
    ],
)
def test_an_index_with_a_junk_source_or_a_shard_listed_twice_is_refused(tmp_path, edit, message):
    path = _edit_index(_shards(tmp_path / "s", [b"0", b"1"]), edit)
    with pytest.raises(DataError, match=message):
        read_index(path)


def test_the_written_test_fold_is_still_compared(tmp_path):
    folder = _shards(tmp_path / "s", [b"0", b"1"])
    _edit_index(folder, lambda i: i["source"]["options"].update(test_fold=3))
    with pytest.raises(DataError, match="hold fold 3"):
        WebDatasetFormat(folder, test_fold=5).index_info()
    assert isinstance(WebDatasetFormat(folder, test_fold=3).index_info()["splits"]["train"][0], Shard)


def test_shard_split_reads_members_of_a_good_shard(tmp_path):
    split = _split(_shards(tmp_path / "s", [b"0", b"1"]))
    assert split.targets == [0, 1] and isinstance(split, ShardSplit)
