"""Round 3 of hostile inputs (issue 24), `multivic shard` mistakes: an OUT inside the source data
set was written there (exit 0), leaving the source with a class folder of shards, so its next read
failed. It is now refused before anything is written."""

import pytest

from multivic.commands.shard import write_shards
from multivic.data.builtin import write_shapes_dataset
from multivic.errors import DataError


@pytest.fixture
def shapes(tmp_path):
    return write_shapes_dataset(tmp_path / "shapes", train_per_class=2, val_per_class=1, size=16)


@pytest.mark.parametrize("inside", ["train/shards", "shards", "val/circle/shards"])
def test_an_out_inside_the_source_is_refused_before_writing(shapes, inside):
    before = sorted(p.relative_to(shapes) for p in shapes.rglob("*"))
    with pytest.raises(DataError, match="is inside the source data set .*choose an OUT outside it"):
        write_shards(str(shapes), shapes / inside, "image_folder", "4")
    assert sorted(p.relative_to(shapes) for p in shapes.rglob("*")) == before


def test_an_out_beside_the_source_is_written(shapes, tmp_path):
    index = write_shards(str(shapes), tmp_path / "shards", "image_folder", "4")
    assert index["splits"]["train"] and (tmp_path / "shards" / "shards.json").is_file()
