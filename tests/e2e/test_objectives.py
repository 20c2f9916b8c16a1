"""The image–text quick-start trains with each built-in objective by one override (loss.name=...)."""

import csv
import json

import pytest

from multivic.cli import main
from multivic.data.builtin.captions import write_captions_dataset

pytestmark = pytest.mark.slow

# The objective and the columns its terms add to history.csv.
OBJECTIVES = {
    "barlow_twins": ("on_diagonal", "off_diagonal"),
    "infonce": ("a_to_b", "b_to_a", "temperature"),
    "vsepp": ("a_to_b", "b_to_a"),
}


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    return write_captions_dataset(tmp_path_factory.mktemp("captions"), train_images=32, val_images=12, size=16)


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_quickstart_trains_with_objective(captioned, tmp_path, objective):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "recipes/quickstart/coco_retrieval.yaml",
            "--output-dir",
            str(run),
            "--no-progress",
            f"loss.name={objective}",
            f"data.root={captioned}",
            "data.num_workers=0",
            "data.image_size=16",
            "train.epochs=1",
            "train.batch_size=16",
            "train.log_every=1",
            "model.branch_a.expander=64-64",
            "model.branch_b.expander=64-64",
            "model.branch_b.encoder_kwargs.hidden_dim=32",
        ]
    )
    assert code == 0
    assert f"name: {objective}" in (run / "config.yaml").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["rsum"] <= 600
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(col in rows[-1] for col in ("loss", "a/std_mean", *OBJECTIVES[objective]))
    assert "invariance" not in rows[-1]
