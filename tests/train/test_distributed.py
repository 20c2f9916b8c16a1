"""Two CPU processes (gloo): the ranks draw different augmentations, from the same initial weights."""

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_ranks_see_different_views_of_the_same_step_and_the_same_initial_weights(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests/train/views_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))

    assert torch.equal(r0["built"], r1["built"]) and torch.equal(r0["weight"], r1["weight"])
    assert r0["view"].shape == r1["view"].shape == (8, 6)  # global batch 16 over 2 processes
    # Every sample is the same vector: the views differ only by their noise, which must differ
    # between ranks, row for row.
    assert all(not torch.equal(a, b) for a, b in zip(r0["view"], r1["view"]))
