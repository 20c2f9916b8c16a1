"""A folder of images without labels, trained through the CLI as a user would."""

import json

import pytest

from multivic.cli import main
from tests.helpers.flat_images import write_flat_images

pytestmark = pytest.mark.slow


@pytest.fixture
def flat_images(tmp_path, tiny_images):
    return write_flat_images(tmp_path / "photos", tiny_images)


def test_a_flat_folder_of_images_trains_and_evaluates_without_labels(flat_images, tiny_recipe, tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level("INFO", logger="multivic"):
        code = main(
            [
                "train",
                str(tiny_recipe),
                "--output-dir",
                str(run),
                "--no-progress",
                "data.format=image_files",
                f"data.root={flat_images}",
            ]
        )
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert "tiny/std_mean" in metrics and "tiny/rankme" in metrics
    assert not any("linear" in k or "knn" in k for k in metrics)
    assert "the data has no labels: the linear and k-NN probes are skipped" in caplog.text
    assert (run / "report" / "report.html").is_file()


def test_a_folder_of_images_without_class_folders_points_at_image_files(flat_images, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "recipes/quickstart/image_image.yaml",
                "--output-dir",
                str(tmp_path / "r"),
                f"data.root={flat_images}",
                "data.builtin=null",
            ]
        )
        == 2
    )
    assert "data.format=image_files" in capsys.readouterr().err
