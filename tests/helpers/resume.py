"""Comparing runs bit for bit, and a run directory as a kill would have left it."""

import shutil

import torch
from safetensors.torch import load_file


def checkpoint_state(run, name=None):
    """The model weights and optimiser state of checkpoint ``name`` (LATEST's by default), read as data."""
    name = name or (run / "checkpoints" / "LATEST").read_text().strip()
    folder = run / "checkpoints" / name
    return {
        "model": load_file(str(folder / "model.safetensors")),
        "optimizer": torch.load(folder / "optimizer.pt", weights_only=True),
    }


def assert_bitwise_equal(got, want, path="checkpoint"):
    if isinstance(want, torch.Tensor):
        assert torch.equal(got, want), path
    elif isinstance(want, dict):
        assert got.keys() == want.keys(), path
        for k in want:
            assert_bitwise_equal(got[k], want[k], f"{path}/{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_bitwise_equal(g, w, f"{path}/{i}")
    else:
        assert got == want, path


def without_rate(rows):
    return [{k: v for k, v in r.items() if k != "samples_per_s"} for r in rows]


def keep_only(run, name):
    """The run directory as a kill right after checkpoint ``name`` would have left it."""
    for folder in (run / "checkpoints").iterdir():
        if folder.is_dir() and folder.name != name:
            shutil.rmtree(folder)
    (run / "checkpoints" / "LATEST").write_text(name + "\n")
