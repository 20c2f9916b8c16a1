"""Shards and shard indexes from someone else are data: an index runs no command, names nothing
outside its folder, and a tampered count is refused before anything is written; `multivic
shard` copies only files that decode as their modality."""

import json
import os
import time

import pytest

from multivic.cli import main
from multivic.commands.shard import write_shards
from multivic.data.builtin import SHAPE_CLASSES, write_shapes_dataset
from multivic.data.formats.webdataset import WebDatasetFormat
from multivic.errors import DataError


@pytest.fixture(scope="module")
def shard_folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    shapes = write_shapes_dataset(base / "shapes", train_per_class=4, val_per_class=2, size=16)
    write_shards(str(shapes), base / "shards", shard_size="12")
    return base / "shards"


def _train_from(folder, recipe, run) -> int:
    """`multivic train` of the tiny recipe from the shards in ``folder``."""
    return main(
        [
            "train",
            str(recipe),
            "--output-dir",
            str(run),
            "--no-progress",
            "data.format=webdataset",
            f"data.root={folder}",
        ]
    )


def _tampered(shard_folder, tmp_path, edit):
    folder = tmp_path / "handed_over"
    folder.mkdir()
    for f in shard_folder.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    index = json.loads((folder / "shards.json").read_text())
    edit(index)
    (folder / "shards.json").write_text(json.dumps(index))
    return folder


def test_an_index_url_that_is_a_command_never_runs_and_nothing_is_written(shard_folder, tmp_path, tiny_recipe, capsys):
    marker = tmp_path / "pwned"
    folder = _tampered(
        shard_folder,
        tmp_path,
        lambda ix: ix["splits"]["train"][0].update(url=f"pipe:touch {marker}; cat train-000000.tar"),
    )
    run = tmp_path / "run"
    code = _train_from(folder, tiny_recipe, run)
    err = capsys.readouterr().err
    assert code != 0 and not marker.exists() and not run.exists()
    assert "splits.train[0] names 'pipe:touch" in err and "data.shards=" in err and "Traceback" not in err


@pytest.mark.parametrize("url", ["../train-000000.tar", "/etc/passwd", "https://example.com/a.tar", "sub/x.tar"])
def test_index_entries_are_file_names_inside_the_folder(shard_folder, tmp_path, url):
    folder = _tampered(shard_folder, tmp_path, lambda ix: ix["splits"]["train"][0].update(url=url))
    with pytest.raises(DataError, match=r"splits.train\[0\] names .*index entries are shard files inside"):
        WebDatasetFormat(folder).index_info()


@pytest.mark.parametrize("samples", [10**12, -1, "12", None, True])
def test_a_tampered_count_is_refused_before_the_run_directory_exists(
    shard_folder, tmp_path, tiny_recipe, capsys, samples
):
    folder = _tampered(shard_folder, tmp_path, lambda ix: ix["splits"]["train"][0].update(samples=samples))
    run = tmp_path / "run"
    code = _train_from(folder, tiny_recipe, run)
    err = capsys.readouterr().err
    assert code != 0 and not run.exists(), err
    assert "splits.train[0]" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("damage", ["not json", "[]", '{"splits": {"train": 3}}', '{"splits": {}, "classes": "abc"}'])
def test_a_damaged_index_is_a_one_line_error(shard_folder, tmp_path, damage):
    folder = _tampered(shard_folder, tmp_path, lambda ix: None)
    (folder / "shards.json").write_text(damage)
    with pytest.raises(DataError, match="shard index"):
        WebDatasetFormat(folder).index_info()


def test_a_fifo_index_is_refused_without_blocking(shard_folder, tmp_path):
    folder = _tampered(shard_folder, tmp_path, lambda ix: None)
    (folder / "shards.json").unlink()
    os.mkfifo(folder / "shards.json")
    start = time.monotonic()
    with pytest.raises(DataError, match="not a regular file"):
        WebDatasetFormat(folder).index_info()
    assert time.monotonic() - start < 5


def test_shard_copies_only_files_that_decode_as_their_modality(tmp_path):
    """A non-image named .png (a symlink to /etc/passwd, say) was copied into the tar verbatim."""
    root = write_shapes_dataset(tmp_path / "data", train_per_class=2, val_per_class=1, size=16)
    (root / "train" / SHAPE_CLASSES[0] / "x.png").write_text("root:x:0:0:root:/root:/bin/bash\n")
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"cannot read image file .*x.png"):
        write_shards(str(root), out)
    assert not out.exists() and not list(tmp_path.glob(".out.*"))
