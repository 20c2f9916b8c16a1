"""Image readers, the built-in shapes set and the view transforms."""

import pytest
import torch

from multivic.data.builtin import SHAPE_CLASSES, write_shapes_dataset
from multivic.data.builtin.location import COMPLETE_MARKER, ensure_written
from multivic.data.formats import LabelledSamples, PairedViews
from multivic.data.readers.image_folder import ImageFolderDataset
from multivic.errors import DataError
from multivic.modalities.image import image_eval_view, image_train_view


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), train_per_class=3, val_per_class=2, size=32)


def test_shapes_written_as_an_image_folder(shapes):
    train = ImageFolderDataset(shapes / "train")
    val = ImageFolderDataset(shapes / "val")
    assert train.classes == sorted(SHAPE_CLASSES) and len(train) == 3 * len(SHAPE_CLASSES)
    assert len(val) == 2 * len(SHAPE_CLASSES)
    image, label = train[0]
    assert image.size == (32, 32) and image.mode == "RGB" and label == 0


def test_shapes_are_reproducible(tmp_path):
    a = write_shapes_dataset(tmp_path / "a", 2, 1, size=16, seed=5)
    b = write_shapes_dataset(tmp_path / "b", 2, 1, size=16, seed=5)
    for f in sorted((a / "train").rglob("*.png")):
        assert f.read_bytes() == (b / f.relative_to(a)).read_bytes()


def test_ensure_written_is_atomic_and_idempotent(tmp_path):
    calls = []

    def write(folder):
        calls.append(folder)
        (folder / "x.txt").write_text("1")

    root = tmp_path / "set"
    ensure_written(root, write)
    ensure_written(root, write)
    assert len(calls) == 1 and (root / COMPLETE_MARKER).exists()

    def crash(folder):
        (folder / "half.txt").write_text("1")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        ensure_written(tmp_path / "other", crash)
    assert not (tmp_path / "other").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".other")]


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolderDataset(tmp_path / "nope")


def test_no_class_folders(tmp_path):
    with pytest.raises(DataError, match="no class sub-folders"):
        ImageFolderDataset(tmp_path)


def test_empty_class_folder_is_named(shapes, tmp_path):
    import shutil

    root = tmp_path / "train"
    shutil.copytree(shapes / "train", root)
    (root / "zzz_empty").mkdir()
    with pytest.raises(DataError, match=r"class folder .*zzz_empty has no images"):
        ImageFolderDataset(root)


def test_unreadable_image_is_named(shapes, tmp_path):
    import shutil

    root = tmp_path / "train"
    shutil.copytree(shapes / "train", root)
    bad = root / "circle" / "broken.png"
    bad.write_bytes(b"not a png")
    ds = ImageFolderDataset(root)
    index = [i for i, (p, _) in enumerate(ds.samples) if p == bad][0]
    with pytest.raises(DataError, match=r"cannot read image .*broken.png"):
        ds[index]


def test_views_have_the_right_shape_and_differ(shapes):
    base = ImageFolderDataset(shapes / "train")
    torch.manual_seed(0)
    sides = ("image", image_train_view(24, blur_p=1.0)), ("image", image_train_view(24, blur_p=0.1, solarize_p=0.2))
    pairs = PairedViews(LabelledSamples(base, "image"), *sides)
    a, b = pairs[0]
    assert a.shape == b.shape == (3, 24, 24) and a.dtype == torch.float32
    assert not torch.equal(a, b)
    ev = image_eval_view(24)
    x1, x2 = ev(base[0][0]), ev(base[0][0])
    assert torch.equal(x1, x2) and x1.shape == (3, 24, 24)


def test_bad_crop_scale():
    with pytest.raises(ValueError, match="crop_scale"):
        image_train_view(32, crop_scale=(0.5, 0.2))


@pytest.mark.parametrize("name", ["cifar10", "stl10"])
def test_torchvision_sets_are_never_downloaded(tmp_path, name):
    from multivic.data.readers.image_folder import TorchvisionImageDataset

    with pytest.raises(DataError, match=rf"{name} not found under .*never downloads"):
        TorchvisionImageDataset(name, tmp_path, "train")


def test_a_symlink_out_of_the_data_set_is_refused(tmp_path):
    """An image folder from someone else links nothing outside its root (a link to /etc/passwd
    named x.png was read, and copied into shards)."""
    root = write_shapes_dataset(tmp_path / "data", train_per_class=1, val_per_class=1, size=16)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    (root / "train" / SHAPE_CLASSES[0] / "x.png").symlink_to(secret)
    with pytest.raises(DataError, match=r"image .*x.png resolves to .*secret.txt, outside "):
        ImageFolderDataset(root / "train")
    # A link that stays inside the data set is fine.
    (root / "train" / SHAPE_CLASSES[0] / "x.png").unlink()
    first = next((root / "val" / SHAPE_CLASSES[0]).iterdir())
    (root / "train" / SHAPE_CLASSES[0] / "x.png").symlink_to(first)
    assert len(ImageFolderDataset(root / "train")) == len(SHAPE_CLASSES) + 1
