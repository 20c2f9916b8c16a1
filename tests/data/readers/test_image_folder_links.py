"""Round 3 of hostile inputs (issue 24), image folders with linked class folders: a class folder
linking to the data set's root (`train/loop -> ..`) made every image, val included, a training
sample of the class "loop", and two class folders linking to one folder gave each image two
labels; both silently. Each is now a DataError naming the link."""

import pytest

from multivic.data.builtin import write_shapes_dataset
from multivic.data.readers.image_folder import ImageFolderDataset
from multivic.errors import DataError


@pytest.fixture
def shapes(tmp_path):
    return write_shapes_dataset(tmp_path / "shapes", train_per_class=2, val_per_class=1, size=16)


@pytest.mark.parametrize("target", ["..", ".", "../.."])
def test_a_class_folder_linking_to_the_split_or_above_is_refused(shapes, target):
    (shapes / "train" / "loop").symlink_to(target)
    with pytest.raises(DataError, match="class folder .*loop links to .*which holds the split folder"):
        ImageFolderDataset(shapes / "train")


def test_two_class_folders_reaching_one_image_are_refused(shapes):
    (shapes / "train" / "zz_copy").symlink_to("circle")
    with pytest.raises(DataError, match=r"circle/.* is reached twice, .*zz_copy/"):
        ImageFolderDataset(shapes / "train")


def test_a_class_folder_linking_inside_the_data_set_elsewhere_reads(shapes, tmp_path):
    extra = shapes / "extra_circles"
    extra.mkdir()
    (extra / "a.png").write_bytes((next((shapes / "train" / "circle").iterdir())).read_bytes())
    (shapes / "train" / "more").symlink_to(extra)
    data = ImageFolderDataset(shapes / "train")
    assert "more" in data.classes and len(data) == 2 * 6 + 1
