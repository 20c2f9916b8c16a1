"""The training loop: one readable function on Hugging Face Accelerate.

prepare → for each epoch: for each batch: autocast forward, backward, step, log → checkpoint.
Processes, devices, mixed precision and gradient accumulation come from Accelerate. The
loss itself runs in float32 whatever the precision of the model (see VICRegLoss).

Resuming: each checkpoint holds the model, optimiser, schedule, the RNG states of every
process and the step counters; the sampler's order depends only on (seed, epoch). Calling
:func:`fit` again on the same run directory continues from the newest checkpoint and
reproduces the uninterrupted run.
"""

from __future__ import annotations

import functools
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from multivic.branch import JointEmbedding
from multivic.errors import ConfigError, MultivicError
from multivic.objectives import NonFiniteLossError
from multivic.optim import OptimizerSpec, build_optimizer, split_decay_groups, warmup_cosine
from multivic.run_dir import HistoryWriter, RunDir, atomic_write_text

logger = logging.getLogger("multivic")

# Below this many rows the variance and covariance estimates of a step get noisy.
MIN_RECOMMENDED_BATCH = 64


class TrainState:
    """Counters saved with each checkpoint (Accelerate's custom-state protocol)."""

    def __init__(self) -> None:
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.step = int(state["epoch"]), int(state["step"])


@dataclass
class FitResult:
    model: JointEmbedding  # unwrapped, on the training device
    accelerator: Accelerator
    epoch: int
    step: int
    resumed_from: str | None


def fit(
    model: JointEmbedding,
    train_set: Dataset,
    run_dir: RunDir,
    *,
    optimizers: Sequence[OptimizerSpec],
    epochs: int,
    batch_size: int,
    grad_accum_steps: int = 1,
    mixed_precision: str = "no",
    num_workers: int = 0,
    seed: int = 0,
    log_every: int = 10,
    checkpoint_every: int = 1,
    keep_checkpoints: int = 1,
    sync_batchnorm: bool = True,
    cpu: bool = False,
    progress: bool = True,
    collate_fn: Callable | None = None,
) -> FitResult:
    """Train ``model`` on pairs of views from ``train_set`` and checkpoint into ``run_dir``.

    Args:
        optimizers: one spec over the whole model, or one per branch; each has its own
            schedule (linear warm-up, then cosine to final_lr_ratio × peak), with the peak at
            base_lr × batch_size × grad_accum_steps / 256.
        batch_size: the global batch, split evenly over processes; the variance and
            covariance terms see all of it (the loss gathers across processes).
        collate_fn: batches the pairs (needed when a side is not a tensor, e.g. captions).
        sync_batchnorm: on several CUDA processes, batch norm uses statistics of the global
            batch, as the released code does (PyTorch's SyncBatchNorm runs on CUDA only).
    """
    accelerator = Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=grad_accum_steps,
        cpu=cpu,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(seed)
    world = accelerator.num_processes
    if batch_size % world:
        raise ConfigError(f"train.batch_size={batch_size} must be divisible by the {world} processes")
    if epochs > 0 and len(train_set) < batch_size:  # type: ignore[arg-type]
        raise ConfigError(
            f"the training split has {len(train_set)} samples, fewer than train.batch_size={batch_size}: lower the batch size"  # type: ignore[arg-type]
        )
    if batch_size < MIN_RECOMMENDED_BATCH and accelerator.is_main_process:
        logger.warning(
            "the variance and covariance terms see %d rows per step (train.batch_size); "
            "below %d their estimates are noisy and VICReg trains worse",
            batch_size,
            MIN_RECOMMENDED_BATCH,
        )

    loader = DataLoader(
        train_set,
        batch_size=batch_size // world,
        shuffle=True,
        drop_last=True,  # the gathered loss needs the same rows on every process
        num_workers=num_workers,
        pin_memory=accelerator.device.type == "cuda",
        persistent_workers=num_workers > 0,
        collate_fn=collate_fn,
    )
    if sync_batchnorm and world > 1 and accelerator.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    opts = [
        build_optimizer(
            o.name, split_decay_groups(o.module, o.weight_decay), o.base_lr * batch_size * grad_accum_steps / 256,
            o.momentum, o.betas,
        )
        for o in optimizers
    ]
    model, loader, *opts = accelerator.prepare(model, loader, *opts)

    steps_per_epoch = max(1, len(loader) // grad_accum_steps)
    total_steps = steps_per_epoch * epochs
    # Stepped by hand once per optimiser step (Accelerate's scheduler wrapper would step them
    # once per process); their state is checkpointed with the rest.
    schedules = [
        torch.optim.lr_scheduler.LambdaLR(
            opt.optimizer,
            functools.partial(
                warmup_cosine, total_steps=total_steps,
                warmup_steps=int(round(o.warmup_epochs * steps_per_epoch)), final_ratio=o.final_lr_ratio,
            ),
        )
        for opt, o in zip(opts, optimizers)
    ]
    state = TrainState()
    accelerator.register_for_checkpointing(*schedules, state)

    resumed_from = None
    latest = run_dir.latest_checkpoint()
    if latest is not None:
        accelerator.load_state(str(latest))
        resumed_from = latest.name
        if accelerator.is_main_process:
            logger.info("resumed from %s at epoch %d, step %d", latest, state.epoch, state.step)
    history = None
    if accelerator.is_main_process:
        run_dir.root.mkdir(parents=True, exist_ok=True)
        history = HistoryWriter(run_dir.history, state.step)

    bar = tqdm(
        total=total_steps,
        initial=state.step,
        disable=not (progress and accelerator.is_main_process),
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 10.0,
        desc="train",
    )
    window_start, window_steps = time.perf_counter(), 0
    for epoch in range(state.epoch, epochs):
        model.train()
        loader.set_epoch(epoch)
        for view_a, view_b in loader:
            with accelerator.accumulate(model):
                with accelerator.autocast():
                    try:
                        loss, metrics = model(view_a, view_b)
                    except NonFiniteLossError as exc:
                        raise MultivicError(
                            f"training diverged at step {state.step} (epoch {epoch}): {exc}; "
                            "lower optim.base_lr or use train.mixed_precision=no, and resume from the last checkpoint"
                        ) from None
                accelerator.backward(loss)
                for opt in opts:
                    opt.step()
                    opt.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue
            lrs = {o.label: sched.get_last_lr()[0] for o, sched in zip(optimizers, schedules)}
            for sched in schedules:
                sched.step()
            state.step += 1
            window_steps += 1
            bar.update(1)
            if state.step % log_every == 0 or state.step == total_steps:
                names = sorted(metrics)
                values = accelerator.reduce(torch.stack([metrics[k].float() for k in names]), "mean")
                elapsed = time.perf_counter() - window_start
                rate = window_steps * batch_size * grad_accum_steps / max(elapsed, 1e-9)
                row = {"step": state.step, "epoch": epoch, "lr": next(iter(lrs.values()))}
                if len(lrs) > 1:
                    row.update({f"lr/{label}": value for label, value in lrs.items()})
                row.update({k: float(v) for k, v in zip(names, values.tolist())})
                row["samples_per_s"] = rate
                if history is not None:
                    history.append(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}", samples_s=f"{rate:.0f}")
                window_start, window_steps = time.perf_counter(), 0
        state.epoch = epoch + 1
        if state.epoch % checkpoint_every == 0 or state.epoch == epochs:
            save_checkpoint(accelerator, run_dir, f"epoch_{state.epoch:04d}", keep_checkpoints)
    bar.close()
    accelerator.wait_for_everyone()
    return FitResult(accelerator.unwrap_model(model), accelerator, state.epoch, state.step, resumed_from)


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

