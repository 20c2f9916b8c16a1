"""The training loop on a tiny vector problem: counts, divergence guard, batch checks, history."""

import logging

import pytest
import torch

from multivic import MultivicError
from multivic.errors import ConfigError
from tests.helpers.toy import PairsOfVectors, adamw, history, train, vicreg_model


def test_fit_logs_every_step_and_counts(tmp_path):
    result = train(vicreg_model(), PairsOfVectors(), tmp_path / "run")
    assert (result.epoch, result.step) == (2, 8)
    lines = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert len(lines) == 1 + 8
    assert lines[0].startswith("step,epoch,lr,")


def test_divergence_is_a_one_line_error_naming_the_step(tmp_path):
    with pytest.raises(
        MultivicError, match=r"training diverged at step 1 \(epoch 0\): z_a \(branch 'vec'\) holds .* non-finite"
    ):
        train(vicreg_model(poison=True), PairsOfVectors(), tmp_path / "run")


def test_batch_larger_than_the_data_set(tmp_path):
    with pytest.raises(ConfigError, match="fewer than train.batch_size=128"):
        train(vicreg_model(), PairsOfVectors(), tmp_path / "run", batch_size=128)


def test_accumulated_batch_larger_than_the_data_set(tmp_path):
    with pytest.raises(ConfigError, match="fewer than train.batch_size=16 × train.grad_accum_steps=5"):
        train(vicreg_model(), PairsOfVectors(), tmp_path / "run", grad_accum_steps=5)


def test_small_batch_warns(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="multivic"):
        train(vicreg_model(), PairsOfVectors(), tmp_path / "run", epochs=1)
    assert "see 16 rows per step" in caplog.text


def test_lr_follows_warmup_and_cosine(tmp_path):
    model = vicreg_model()
    train(model, PairsOfVectors(), tmp_path / "run", [adamw(model, base_lr=0.256, warmup_epochs=1, final_lr_ratio=0.0)])
    lrs = [float(r["lr"]) for r in history(tmp_path / "run")]
    peak = 0.256 * 16 / 256
    assert lrs[:4] == pytest.approx([peak * k / 4 for k in (1, 2, 3, 4)])
    assert lrs[4] == pytest.approx(peak) and lrs[-1] < peak / 2


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_a_float32_loss(tmp_path, precision):
    result = train(vicreg_model(), PairsOfVectors(), tmp_path / "run", mixed_precision=precision, epochs=1)
    assert result.step == 4
    rows = history(tmp_path / "run")
    assert all(float(v) == float(v) for r in rows for k, v in r.items() if k != "collapse_alarm")  # no NaN logged
    with result.accelerator.autocast():
        loss, _ = result.model(torch.randn(8, 6), torch.randn(8, 6))
    assert loss.dtype == torch.float32


def test_checkpoints_keep_the_newest_and_latest_names_one(tmp_path):
    run = tmp_path / "run"
    train(vicreg_model(), PairsOfVectors(), run, epochs=3, keep_checkpoints=2)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["LATEST", "epoch_0002", "epoch_0003"]
    assert (ckpts / "LATEST").read_text().strip() == "epoch_0003"


def test_resume_truncates_history_to_the_checkpoint(tmp_path):
    run = tmp_path / "run"
    train(vicreg_model(), PairsOfVectors(), run, epochs=2, checkpoint_every=1, keep_checkpoints=3)
    # Point LATEST back at epoch 1, as if the run had been killed during epoch 2.
    (run / "checkpoints" / "LATEST").write_text("epoch_0001\n")
    result = train(vicreg_model(), PairsOfVectors(), run, epochs=2)
    assert (result.resumed_from, result.step) == ("epoch_0001", 8)
    assert [int(r["step"]) for r in history(run)] == list(range(1, 9))


def test_the_progress_bar_shows_epoch_loss_terms_lr_and_rate():
    from multivic.train.progress import StepLogger

    row = {"loss": 22.5, "invariance": 0.01, "variance": 0.7, "covariance": 0.12, "lr": 0.001, "samples_per_s": 263.4}
    assert StepLogger._postfix(2, row, ["covariance", "invariance", "variance"]) == {
        "epoch": "3",
        "loss": "22.500",
        "cov": "0.12",
        "inv": "0.01",
        "var": "0.7",
        "lr": "1.00e-03",
        "samples/s": "263",
    }
    # another objective's terms by their own names
    row = {"loss": 3.5, "on_diagonal": 1.25, "off_diagonal": 0.5, "lr": 0.001, "samples_per_s": 10.0}
    shown = StepLogger._postfix(0, row, ["off_diagonal", "on_diagonal"])
    assert (shown["on_diagonal"], shown["off_diagonal"]) == ("1.25", "0.5")
