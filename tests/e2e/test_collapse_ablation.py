"""The paper's ablation in small: the invariance term alone collapses the embeddings, VICReg does not."""

import csv
import json

import pytest

from multivic.cli import main

pytestmark = pytest.mark.slow


def _run(recipe, out, *overrides):
    args = ["train", str(recipe), "--output-dir", str(out), "--no-progress"]
    assert main([*args, "train.epochs=10", "optim.base_lr=0.04", "eval.linear_epochs=1", *overrides]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    return metrics, rows


def test_invariance_only_collapses_and_the_full_loss_does_not(tiny_recipe, tmp_path, caplog):
    inv, inv_rows = _run(tiny_recipe, tmp_path / "inv", "loss.std_coeff=0", "loss.cov_coeff=0")
    inv_log, _ = caplog.text, caplog.clear()
    full, full_rows = _run(tiny_recipe, tmp_path / "full")
    # The collapse alarm: in the log and history of the invariance-only run, never in the full run's.
    assert "collapse alarm at step" in inv_log and "collapse alarm" not in caplog.text
    assert inv_rows[-1]["collapse_alarm"].startswith("tiny (a): std ")
    assert all(r["collapse_alarm"] == "" for r in full_rows)
    inv_val, full_val = inv["tiny/std_mean"], full["tiny/std_mean"]
    inv_train, full_train = [float(r["a/std_mean"]) for r in inv_rows], [float(r["a/std_mean"]) for r in full_rows]
    # Per-dimension std of the expander output on the val split (what metrics.json reports).
    assert inv_val < 0.1, inv_val
    assert full_val > 0.25, full_val
    assert full_val > 4 * inv_val
    # And during training: the invariance-only run shrinks its embeddings, VICReg grows them.
    assert inv_train[-1] < 0.5 * inv_train[0]
    assert full_train[-1] > full_train[0]
