"""Two CPU processes (gloo) give, after DDP's gradient averaging, the gradients of one process on
the whole batch, for every objective; the ranks' losses and terms average to the whole batch's.

The gradients are compared absolutely (rtol 1e-10 in float64), so a gather whose backward is off
by the world size (lightly's bug) or a loss all-reduced without gradient (the official Barlow
Twins code) fails here by a factor of 2.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers.objective_ddp import CASES, Joint, make_batch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    """One torchrun launch running every case (a launch costs seconds; the cases, milliseconds)."""
    out = tmp_path_factory.mktemp("ddp") / "ddp.pt"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests/helpers/objective_ddp_worker.py"),
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0:  # once more: a loaded machine has aborted gloo at teardown; a real fault fails twice
        out.unlink(missing_ok=True)
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


@pytest.mark.parametrize("case,objective,kwargs", CASES, ids=[c[0] for c in CASES])
def test_two_processes_match_one(two_process_results, case, objective, kwargs):
    got = two_process_results[case]
    joint = Joint(objective, kwargs)
    loss, terms = joint(*make_batch())
    loss.backward()

    # Each rank's loss (and terms) is its share: their mean is the whole batch's (equal shards).
    whole = torch.cat([loss.detach().reshape(1), terms.detach()])
    assert torch.allclose(got["per_rank"].mean(dim=0), whole, rtol=1e-12, atol=1e-15)
    params = dict(joint.named_parameters())
    assert set(got["grads"]) == set(params)
    for name, p in params.items():
        assert torch.allclose(got["grads"][name], p.grad, rtol=1e-10, atol=1e-14), name
        assert p.grad.abs().max() > 0, name  # the comparison is not between zeros
