"""Two CPU processes (gloo): the ranks draw different augmentations, from the same initial weights."""

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_ranks_see_different_views_of_the_same_step_and_the_same_initial_weights(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests/helpers/views_worker.py"),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))

    assert torch.equal(r0["built"], r1["built"]) and torch.equal(r0["weight"], r1["weight"])
    assert r0["view"].shape == r1["view"].shape == (8, 6)  # global batch 16 over 2 processes
    # Every sample is the same vector: the views differ only by their noise, which must differ
    # between ranks, row for row.
    assert all(not torch.equal(a, b) for a, b in zip(r0["view"], r1["view"]))


def _launch(out, *args, processes=2):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        str(ROOT / "tests/helpers/fit_worker.py"),
        str(out),
        *map(str, args),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out / "final.pt", weights_only=True)


def test_two_processes_equal_one_process_on_the_same_global_batch(tmp_path):
    """Global batch 16 = 2 × 8: the same samples with the same augmentation seeds, the loss
    gathered over processes, DDP-averaged gradients: the weights after two steps match one
    process's (float64; only the summation order differs)."""
    import csv

    from tests.helpers.fit_worker import main

    two = _launch(tmp_path / "two", 1, 32)
    main(tmp_path / "one", 1, 32, 0)
    one = torch.load(tmp_path / "one" / "final.pt", weights_only=True)
    for k in one:
        torch.testing.assert_close(
            two[k], one[k], rtol=1e-9, atol=1e-10, msg=k
        )  # AdamW divides by sqrt(v): order noise grows to ~1e-11
    rows = [list(csv.DictReader((tmp_path / d / "history.csv").open())) for d in ("two", "one")]
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]] == ["1", "2"]
    for a, b in zip(*rows):
        assert abs(float(a["loss"]) - float(b["loss"])) < 1e-9


def test_two_processes_resume_from_a_mid_epoch_checkpoint_bitwise(tmp_path):
    import shutil

    from tests.helpers.resume import keep_only

    whole = _launch(tmp_path / "whole", 2, 64, 3)  # 4 steps per epoch; checkpoints at steps 3, 6
    shutil.copytree(tmp_path / "whole", tmp_path / "killed")
    keep_only(tmp_path / "killed", "step_000000006")
    (tmp_path / "killed" / "final.pt").unlink()
    resumed = _launch(tmp_path / "killed", 2, 64, 3)
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
