"""The training loop on a tiny vector problem: divergence guard, batch checks, history."""

import logging

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from multivic import Branch, Expander, JointEmbedding, MultivicError
from multivic.errors import ConfigError
from multivic.optim import OptimizerSpec
from multivic.run_dir import RunDir
from multivic.trainer import fit


class PairsOfVectors(Dataset):
    def __init__(self, n=64, dim=6):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, dim, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i]
        return x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x)


class Linear(nn.Module):
    modality = "vector"

    def __init__(self, poison=False):
        super().__init__()
        self.lin = nn.Linear(6, 8)
        self.out_dim = 8
        self.poison = poison

    def forward(self, x):
        y = self.lin(x)
        return y * float("nan") if self.poison else y


def _model(poison=False):
    branch = Branch("vec", Linear(poison), Expander(8, "16-16"))
    return JointEmbedding(branch, branch)


def _fit(model, tmp_path, **kw):
    opt = dict(base_lr=kw.pop("base_lr", 0.01), warmup_epochs=kw.pop("warmup_epochs", 0), final_lr_ratio=kw.pop("final_lr_ratio", 0.001))
    args = dict(epochs=2, batch_size=16, cpu=True, progress=False, log_every=1)
    args.update(kw)
    spec = OptimizerSpec("adamw", model, weight_decay=1e-4, **opt)
    return fit(model, PairsOfVectors(), RunDir(tmp_path / "run"), optimizers=[spec], **args)


def test_fit_logs_every_step_and_counts(tmp_path):
    result = _fit(_model(), tmp_path)
    assert (result.epoch, result.step) == (2, 8)
    lines = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(lines) == 1 + 8
    assert lines[0].startswith("step,epoch,lr,")


def test_divergence_is_a_one_line_error_naming_the_step(tmp_path):
    with pytest.raises(MultivicError, match=r"training diverged at step 0 \(epoch 0\): z_a holds .* non-finite"):
        _fit(_model(poison=True), tmp_path)


def test_batch_larger_than_the_data_set(tmp_path):
    with pytest.raises(ConfigError, match="fewer than train.batch_size=128"):
        _fit(_model(), tmp_path, batch_size=128)


def test_small_batch_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="multivic"):
        _fit(_model(), tmp_path, epochs=1)
    assert "see 16 rows per step" in caplog.text


def test_lr_follows_warmup_and_cosine(tmp_path):
    _fit(_model(), tmp_path, epochs=2, warmup_epochs=1, base_lr=0.256, final_lr_ratio=0.0)
    rows = [line.split(",") for line in (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]]
    lrs = [float(r[2]) for r in rows]
    peak = 0.256 * 16 / 256
    assert lrs[:4] == pytest.approx([peak * k / 4 for k in (1, 2, 3, 4)])
    assert lrs[4] == pytest.approx(peak) and lrs[-1] < peak / 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_a_float32_loss(tmp_path, precision):
    result = _fit(_model(), tmp_path, mixed_precision=precision, epochs=1)
    assert result.step == 4
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]
    assert all(float(v) == float(v) for r in rows for v in r.split(","))  # no NaN logged
    with result.accelerator.autocast():
        loss, _ = result.model(torch.randn(8, 6), torch.randn(8, 6))
    assert loss.dtype == torch.float32
