"""A run resumed from an epoch checkpoint is bitwise the uninterrupted run, data-loading workers included."""

import shutil

import pytest
import torch

from tests.train.toy import PairsOfVectors, history, train, vicreg_model


def _checkpoint(run):
    folder = run / "checkpoints" / (run / "checkpoints" / "LATEST").read_text().strip()
    return {
        "model": torch.load(folder / "pytorch_model.bin", weights_only=True),
        "optimizer": torch.load(folder / "optimizer.bin", weights_only=True),
    }


def _assert_bitwise_equal(got, want, path="checkpoint"):
    if isinstance(want, torch.Tensor):
        assert torch.equal(got, want), path
    elif isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for k in want:
            _assert_bitwise_equal(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_bitwise_equal(g, w, f"{path}/{i}")
    else:
        assert got == want, path


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resumed_run_is_bitwise_the_uninterrupted_one(tmp_path, num_workers):
    data = PairsOfVectors(64)
    whole = train(vicreg_model(), data, tmp_path / "whole", epochs=3, num_workers=num_workers, keep_checkpoints=3)
    # The same run killed during epoch 2: its directory as it was after epoch 1's checkpoint.
    shutil.copytree(tmp_path / "whole", tmp_path / "parts")
    for name in ("epoch_0002", "epoch_0003"):
        shutil.rmtree(tmp_path / "parts" / "checkpoints" / name)
    (tmp_path / "parts" / "checkpoints" / "LATEST").write_text("epoch_0001\n")
    resumed = train(vicreg_model(), data, tmp_path / "parts", epochs=3, num_workers=num_workers, keep_checkpoints=3)

    assert resumed.resumed_from == "epoch_0001" and (resumed.epoch, resumed.step) == (whole.epoch, whole.step) == (3, 12)
    _assert_bitwise_equal(resumed.model.state_dict(), whole.model.state_dict(), "model")
    _assert_bitwise_equal(_checkpoint(tmp_path / "parts"), _checkpoint(tmp_path / "whole"))
    drop_rate = lambda rows: [{k: v for k, v in r.items() if k != "samples_per_s"} for r in rows]  # noqa: E731
    assert drop_rate(history(tmp_path / "parts")) == drop_rate(history(tmp_path / "whole"))
