"""Two CPU processes (gloo) give the loss and DDP-averaged gradients of one process on the whole batch."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from multivic.objectives import VICRegLoss
from tests.objectives.ddp_common import make_batch, make_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("form", ["gram", "covariance"])
def test_two_processes_match_one(tmp_path, form):
    out = tmp_path / "ddp.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests/objectives/ddp_worker.py"), str(out), form]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(out)

    model = make_model()
    x_a, x_b = make_batch()
    ref = VICRegLoss(covariance_form=form)(model(x_a), model(x_b))
    ref.loss.backward()

    # The invariance term is local: the ranks' mean equals the whole-batch term (equal shards).
    assert torch.allclose(got["losses"].mean(), ref.loss.detach(), rtol=1e-12)
    assert torch.allclose(got["variance"], ref.variance.detach(), rtol=1e-12)
    assert torch.allclose(got["covariance"], ref.covariance.detach(), rtol=1e-12)
    for name, p in model.named_parameters():
        assert torch.allclose(got["grads"][name], p.grad, rtol=1e-10, atol=1e-14), name
