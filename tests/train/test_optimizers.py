"""One optimiser per branch under fp16 loss scaling: one GradScaler update per optimiser step,
and an overflow in either branch skips the step of both."""

import pytest
import torch
from accelerate import Accelerator
from accelerate.optimizer import AcceleratedOptimizer
from torch import nn

import multivic.train.loop as loop
from multivic.train.optimizers import JointOptimizer
from tests.helpers.toy import PairsOfVectors, adamw, history, train, two_branch_linear_model


class CountingScaler(torch.amp.GradScaler):
    """A real loss scaler on the CPU (Accelerate makes none there) that counts its calls."""

    def __init__(self) -> None:
        super().__init__("cpu", init_scale=2.0**10)
        self.steps = self.updates = 0

    def step(self, optimizer, *args, **kwargs):
        self.steps += 1
        return super().step(optimizer, *args, **kwargs)

    def update(self, new_scale=None):
        self.updates += 1
        return super().update(new_scale)


def test_two_branch_optimisers_update_the_scale_once_per_step(tmp_path, monkeypatch):
    scalers = []

    class ScaledAccelerator(Accelerator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.scaler = CountingScaler()  # what fp16 on a GPU gets: prepare hands it to the optimiser
            scalers.append(self.scaler)

    monkeypatch.setattr(loop, "Accelerator", ScaledAccelerator)
    model = two_branch_linear_model(torch.float32)
    specs = [adamw(model.branch_a, label="a"), adamw(model.branch_b, label="b", base_lr=0.02)]
    result = train(model, PairsOfVectors(64), tmp_path / "run", specs, batch_size=16, grad_accum_steps=2, epochs=2)
    assert result.step == 4
    assert (scalers[0].steps, scalers[0].updates) == (4, 4)  # 8 micro-batches, 4 optimiser steps, 2 branches
    assert {k for k in history(tmp_path / "run")[0] if k.startswith("lr/")} == {"lr/a", "lr/b"}


def _two_params():
    a, b = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2))
    return a, b, JointOptimizer([torch.optim.SGD([a], lr=0.1), torch.optim.SGD([b], lr=0.1)])


def test_an_overflow_in_one_branch_skips_both_and_halves_the_scale_once():
    Accelerator(cpu=True)  # the state AcceleratedOptimizer reads
    a, b, joint = _two_params()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, backoff_factor=0.5)
    opt = AcceleratedOptimizer(joint, device_placement=False, scaler=scaler)

    scaler.scale(a.sum() + (b * torch.tensor([float("inf"), 1.0])).sum()).backward()  # b overflows
    opt.step()
    opt.zero_grad()
    assert torch.equal(a.detach(), torch.ones(3)) and torch.equal(b.detach(), torch.ones(2))
    assert scaler.get_scale() == 2.0**9 and opt.step_was_skipped

    scaler.scale(a.sum() + b.sum()).backward()  # every gradient 1 once unscaled
    opt.step()
    assert torch.allclose(a.detach(), torch.full((3,), 0.9)) and torch.allclose(b.detach(), torch.full((2,), 0.9))
    assert scaler.get_scale() == 2.0**9 and not opt.step_was_skipped


def test_joint_state_dict_round_trips_each_part():
    a, b, joint = _two_params()
    for p in (a, b):
        p.grad = torch.ones_like(p)
    joint.parts[0] = torch.optim.AdamW([a], lr=0.1)
    joint.step()
    _, _, other = _two_params()
    other.parts[0] = torch.optim.AdamW([other.parts[0].param_groups[0]["params"][0]], lr=0.1)
    other.load_state_dict(joint.state_dict())
    assert torch.equal(
        other.parts[0].state_dict()["state"][0]["exp_avg"], joint.parts[0].state_dict()["state"][0]["exp_avg"]
    )
    with pytest.raises(ValueError, match="holds 2 optimisers, this run has 1"):
        JointOptimizer([torch.optim.SGD([a], lr=0.1)]).load_state_dict(joint.state_dict())
