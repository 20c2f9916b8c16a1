"""A resumed run is bitwise the uninterrupted one: from an epoch's end or the middle of an epoch,
with data-loading workers, with dropout drawing from the global RNG."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.resume import assert_bitwise_equal, checkpoint_state, keep_only, without_rate
from tests.helpers.toy import PairsOfVectors, history, train, vicreg_model


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumed_from_an_epoch_checkpoint_is_bitwise_the_uninterrupted_run(tmp_path, num_workers):
    data = PairsOfVectors(64)
    whole = train(
        vicreg_model(dropout=0.2), data, tmp_path / "whole", epochs=3, num_workers=num_workers, keep_checkpoints=3
    )
    shutil.copytree(tmp_path / "whole", tmp_path / "parts")
    keep_only(tmp_path / "parts", "epoch_0001")
    resumed = train(
        vicreg_model(dropout=0.2), data, tmp_path / "parts", epochs=3, num_workers=num_workers, keep_checkpoints=3
    )

    assert resumed.resumed_from == "epoch_0001" and (resumed.epoch, resumed.step) == (whole.epoch, whole.step) == (
        3,
        12,
    )
    assert_bitwise_equal(resumed.model.state_dict(), whole.model.state_dict(), "model")
    assert_bitwise_equal(checkpoint_state(tmp_path / "parts"), checkpoint_state(tmp_path / "whole"))
    assert without_rate(history(tmp_path / "parts")) == without_rate(history(tmp_path / "whole"))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumed_in_the_middle_of_an_epoch_is_bitwise_the_uninterrupted_run(tmp_path, num_workers):
    # 64 samples / 16 = 4 steps per epoch; checkpoints every 3 steps land at steps 3, 6 (mid-epoch).
    data = PairsOfVectors(64)
    kw = dict(epochs=3, num_workers=num_workers, checkpoint_every_steps=3, keep_checkpoints=10)
    whole = train(vicreg_model(dropout=0.2), data, tmp_path / "whole", **kw)
    names = sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir() if p.is_dir())
    assert names == ["epoch_0001", "epoch_0002", "epoch_0003", "step_000000003", "step_000000006", "step_000000009"]
    for name in ("step_000000003", "step_000000006"):
        parts = tmp_path / f"from_{name}"
        shutil.copytree(tmp_path / "whole", parts)
        keep_only(parts, name)
        resumed = train(vicreg_model(dropout=0.2), data, parts, **kw)
        assert resumed.resumed_from == name and resumed.step == whole.step == 12
        assert_bitwise_equal(resumed.model.state_dict(), whole.model.state_dict(), f"model from {name}")
        assert without_rate(history(parts)) == without_rate(history(tmp_path / "whole"))


def test_a_step_checkpoint_records_where_in_the_epoch_it_was_taken(tmp_path):
    import json

    train(vicreg_model(), PairsOfVectors(64), tmp_path / "run", epochs=2, checkpoint_every_steps=3, keep_checkpoints=10)
    meta = json.loads((tmp_path / "run" / "checkpoints" / "step_000000006" / "trainer.json").read_text())
    assert meta["state"]["epoch"] == 1 and meta["state"]["steps_in_epoch"] == 2 and meta["state"]["step"] == 6


def test_checkpoints_hold_no_pickle(tmp_path):
    """Every file of a checkpoint loads as data: safetensors, JSON, or torch.load(weights_only=True)."""
    import json

    train(vicreg_model(), PairsOfVectors(64), tmp_path / "run", epochs=1)
    folder = tmp_path / "run" / "checkpoints" / "epoch_0001"
    for f in folder.iterdir():
        if f.suffix == ".safetensors":
            load_file(str(f))
        elif f.suffix == ".json":
            json.loads(f.read_text())
        else:
            assert f.suffix == ".pt", f
            torch.load(f, weights_only=True)
    assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.bin"))
