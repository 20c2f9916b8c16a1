"""Shared fixtures: a tiny on-disk image set and a tiny recipe, and a clean Accelerate state."""

import pytest
import torch

from multivic.data.builtin import write_shapes_dataset
from tests.helpers.recipes import TINY_RECIPE


@pytest.fixture(autouse=True)
def _fresh_accelerate_state(monkeypatch, tmp_path_factory):
    """Each test gets its own Accelerate singleton state and a private built-in data folder."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    monkeypatch.setenv("MULTIVIC_DATA_DIR", str(tmp_path_factory.getbasetemp() / "builtin"))
    torch.set_num_threads(2)
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory):
    """An ImageFolder of the shapes set: 6 classes, 12 train and 4 val images each, 32 px."""
    return write_shapes_dataset(tmp_path_factory.mktemp("tiny_shapes"), train_per_class=12, val_per_class=4, size=32)


@pytest.fixture
def tiny_recipe(tmp_path, tiny_images):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RECIPE.replace("root: null", f"root: {tiny_images}"))
    return path
