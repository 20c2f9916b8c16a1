"""Gradient accumulation: the schedule counts the optimiser steps that run, and k micro-batches
make the same update as one batch k times larger."""

import math

import pytest
import torch

from tests.helpers.toy import PairsOfVectors, adamw, history, train, two_branch_linear_model, vicreg_model


def test_seven_batches_accumulated_by_three_end_the_schedule_at_the_last_step(tmp_path):
    # 56 samples / batch 8 = 7 micro-batches, windows of 3: 2 whole optimiser steps per epoch.
    model = vicreg_model()
    spec = adamw(model, base_lr=0.256, final_lr_ratio=0.01)
    train(model, PairsOfVectors(56), tmp_path / "run", [spec], batch_size=8, grad_accum_steps=3, epochs=3)
    rows = history(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["epoch"]) for r in rows] == [0, 0, 1, 1, 2, 2]
    # Independent reference: cosine from the peak to 1% of it over the 6 steps that ran.
    peak, total = 0.256 * 8 * 3 / 256, 6
    expected = [peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * s / total))) for s in range(total)]
    assert [float(r["lr"]) for r in rows] == pytest.approx(expected, rel=1e-12)


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_accumulating_three_micro_batches_equals_one_batch_three_times_larger(tmp_path):
    data = PairsOfVectors(56, dtype=torch.float64)  # 7 batches of 8, or 2 of 24
    initial = _params(two_branch_linear_model())

    small = two_branch_linear_model()
    train(small, data, tmp_path / "accum", [adamw(small)], batch_size=8, grad_accum_steps=3, epochs=2)
    large = two_branch_linear_model()
    train(large, data, tmp_path / "large", [adamw(large)], batch_size=24, grad_accum_steps=1, epochs=2)

    got, want = _params(small), _params(large)
    for name in want:
        assert not torch.equal(want[name], initial[name]), name  # the runs did train
        torch.testing.assert_close(got[name], want[name], rtol=1e-12, atol=1e-14, msg=name)
    assert [r["step"] for r in history(tmp_path / "accum")] == [r["step"] for r in history(tmp_path / "large")]
