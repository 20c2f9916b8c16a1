"""Round 3 of hostile inputs (issue 24), checkpoint files: model.safetensors' alias header and
optimizer.pt's per-parameter state are data from elsewhere. Both tampered files resumed into a
traceback (AttributeError while loading, RuntimeError in the first optimiser step); now each is a
one-line RunDirError naming the file, raised before a step runs."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from multivic.errors import RunDirError
from tests.helpers.toy import PairsOfVectors, train, vicreg_model


def _resume(run):
    return train(vicreg_model(), PairsOfVectors(64), run, epochs=2)


def test_an_alias_header_that_is_not_a_mapping_is_a_damaged_checkpoint(run):
    path = run / "checkpoints" / "epoch_0001" / "model.safetensors"
    save_file(load_file(path), path, metadata={"aliases": "[1, 2, 3]"})
    with pytest.raises(RunDirError, match="cannot be loaded .*aliases.* is not a mapping"):
        _resume(run)


def _edit_optimizer_state(run, edit):
    path = run / "checkpoints" / "epoch_0001" / "optimizer.pt"
    state = torch.load(path, weights_only=True)
    parts = state["parts"] if "parts" in state else [state]
    for part in parts:
        for buffers in part["state"].values():
            for key, value in list(buffers.items()):
                if isinstance(value, torch.Tensor) and value.dim() > 0:
                    buffers[key] = edit(value)
    torch.save(state, path)


def test_optimizer_state_of_another_shape_is_refused_before_a_step(run):
    _edit_optimizer_state(run, lambda v: torch.zeros(3))
    with pytest.raises(RunDirError, match=r"optimizer.pt has .* of shape \[3\] for a parameter of shape"):
        _resume(run)


def test_optimizer_state_that_is_not_finite_is_refused(run):
    _edit_optimizer_state(run, lambda v: torch.full_like(v, float("nan")))
    with pytest.raises(RunDirError, match="optimizer.pt has NaN or infinite"):
        _resume(run)
