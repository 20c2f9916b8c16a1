"""A NaN at a known step under each train.on_nonfinite policy, and gradient clipping."""

import pytest
import torch

from multivic.data.loader import EpochBatches
from multivic.errors import MultivicError
from multivic.train.optimizers import JointOptimizer
from tests.helpers.toy import PairsOfVectors, history, train, vicreg_model

POISONED = 5


class NaNAt(PairsOfVectors):
    """Sample POISONED is readable but holds NaN (corrupt values, or a model about to diverge)."""

    def __getitem__(self, i):
        a, b = super().__getitem__(i)
        return (a * float("nan"), b) if i == POISONED else (a, b)


def step_of_poisoned_sample(epoch: int, num_samples=64, batch=16) -> int:
    """1-based optimiser step (over the run) whose batch holds sample POISONED, from the sampler itself."""
    sampler = EpochBatches(num_samples, batch, 1, seed=0)
    sampler.set_epoch(epoch)
    for b, keys in enumerate(sampler):
        if POISONED in [i for i, _ in keys]:
            return epoch * len(sampler) + b + 1
    raise AssertionError


def test_stop_names_the_step_and_the_branch_and_keeps_the_last_checkpoint(tmp_path):
    step = step_of_poisoned_sample(0)
    with pytest.raises(
        MultivicError, match=rf"training diverged at step {step} \(epoch 0\): z_a \(branch 'vec'\) holds"
    ):
        train(vicreg_model(), NaNAt(64), tmp_path / "run", epochs=2)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


def test_skip_leaves_the_weights_finite_and_counts_each_skipped_step(tmp_path, caplog):
    result = train(vicreg_model(), NaNAt(64), tmp_path / "run", epochs=2, on_nonfinite="skip")
    assert (result.step, result.skipped_steps) == (8, 2)  # the poisoned sample is drawn once per epoch
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    rows = history(tmp_path / "run")
    steps = [step_of_poisoned_sample(0), step_of_poisoned_sample(1)]
    assert [int(r["step"]) for r in rows if r["loss"] == "nan"] == steps
    assert [int(r["skipped_steps"]) for r in rows] == [sum(s <= int(r["step"]) for s in steps) for r in rows]
    assert f"skipped step {steps[0]} (epoch 0): non-finite" in caplog.text


def test_skip_stops_after_too_many_non_finite_steps_in_a_row(tmp_path):
    with pytest.raises(MultivicError, match=r"1 steps in a row were non-finite up to step \d+"):
        train(vicreg_model(), NaNAt(64), tmp_path / "run", epochs=1, on_nonfinite="skip", max_nonfinite_in_row=1)


def test_a_skipped_step_applies_nothing(tmp_path, monkeypatch):
    """With every sample poisoned, no step is applied: the weights stay the initial ones."""

    class AllNaN(PairsOfVectors):
        def __getitem__(self, i):
            a, b = super().__getitem__(i)
            return a * float("nan"), b

    initial = {k: v.clone() for k, v in vicreg_model().state_dict().items()}
    result = train(
        vicreg_model(), AllNaN(64), tmp_path / "run", epochs=1, on_nonfinite="skip", max_nonfinite_in_row=100
    )
    assert result.skipped_steps == 4
    for k, v in result.model.state_dict().items():
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):  # BN statistics saw the NaN batch
            assert torch.equal(v, initial[k]), k


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_clip_grad_norm_bounds_the_norm_the_optimiser_sees(tmp_path, monkeypatch, clip):
    norms = []
    step = JointOptimizer.step

    def spy(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.nn.utils.get_total_norm(grads)))
        return step(self, closure)

    monkeypatch.setattr(JointOptimizer, "step", spy)
    train(vicreg_model(), PairsOfVectors(64), tmp_path / "run", epochs=1, clip_grad_norm=clip)
    assert len(norms) == 4
    if clip is None:
        assert min(norms) > 1e-2
    else:
        assert max(norms) <= clip * (1 + 1e-5)
