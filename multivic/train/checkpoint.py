"""Checkpoints: written atomically by every process, pointed at by checkpoints/LATEST, resumed.

Each checkpoint is Accelerate's state folder: model, optimisers, GradScaler, the RNG states of
every process, and the registered custom states (the schedules and :class:`TrainState`). Sample
order and augmentations are functions of (seed, epoch, sample) (see multivic.train.data), so
nothing about the data loader needs saving.
"""

from __future__ import annotations

import logging
import shutil

from accelerate import Accelerator

from multivic.run_dir import RunDir, atomic_write_text

logger = logging.getLogger("multivic")


class TrainState:
    """Counters saved with each checkpoint (Accelerate's custom-state protocol)."""

    def __init__(self) -> None:
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])


def resume(accelerator: Accelerator, run_dir: RunDir, state: TrainState) -> str | None:
    """Load the newest complete checkpoint of ``run_dir``, if any, into everything registered with
    ``accelerator`` (``state`` included); return its name."""
    latest = run_dir.latest_checkpoint()
    if latest is None:
        return None
    accelerator.load_state(str(latest))
    if accelerator.is_main_process:
        logger.info("resumed from %s at epoch %d, step %d", latest, state.epoch, state.step)
    return latest.name


def save_checkpoint(accelerator: Accelerator, run_dir: RunDir, name: str, keep: int = 1) -> None:
    """Write a checkpoint folder atomically and point checkpoints/LATEST at it.

    The state goes to ``<name>.tmp`` first and is renamed when every process has written its
    part; LATEST is replaced atomically afterwards; older checkpoints are then removed. A
    kill at any moment leaves LATEST naming a complete checkpoint. The newest ``keep`` stay.
    """
    final = run_dir.checkpoints / name
    tmp = run_dir.checkpoints / f"{name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    # safe_serialization=False: with shared weights one tensor appears under two names, which
    # safetensors refuses; checkpoints are for resuming only, exports use safetensors.
    accelerator.save_state(str(tmp), safe_serialization=False)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        atomic_write_text(run_dir.checkpoints / "LATEST", name + "\n")
        done = sorted(p for p in run_dir.checkpoints.iterdir() if p.is_dir() and not p.name.endswith(".tmp"))
        for old in done[: max(0, len(done) - keep)]:
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
