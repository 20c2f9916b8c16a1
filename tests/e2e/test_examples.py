"""The examples under examples/ run as documented (on the tiny image set)."""

import sys

import pytest

from multivic import registry
from multivic.cli import main

pytestmark = pytest.mark.slow

FAST = ["train.epochs=1", "train.batch_size=16", "data.image_size=16", "data.num_workers=0", "eval.linear_epochs=2"]


@pytest.mark.parametrize("recipe", ["decorator_recipe.yaml", "import_path_recipe.yaml"])
def test_custom_encoder_examples_train(recipe, tiny_images, tmp_path, monkeypatch):
    monkeypatch.chdir(registry.Path(__file__).resolve().parents[2])  # import paths are repo-relative
    code = main(
        [
            "train",
            f"examples/custom_encoder/{recipe}",
            "--output-dir",
            str(tmp_path / "run"),
            "--no-progress",
            f"data.root={tiny_images}",
            *FAST,
        ]
    )
    assert code == 0
    assert (tmp_path / "run" / "export" / "cnn.safetensors").is_file()
    # The exported branch loads again in a fresh registry state: the export records its imports,
    # which it imports when trusted.
    registry.ENCODERS._entries.pop("small_cnn", None)
    for name in [m for m in sys.modules if m.startswith("multivic_user_my_encoders")]:
        del sys.modules[name]
    from multivic import load_branch

    assert load_branch(tmp_path / "run", "cnn", trust_imports=True).representation_dim in (64, 128)
