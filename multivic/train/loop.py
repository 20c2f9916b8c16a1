"""The training loop: one readable function on Hugging Face Accelerate.

prepare → for each epoch: for each batch: autocast forward, backward, step, log → checkpoint.
Processes, devices, mixed precision and gradient accumulation come from Accelerate; the loader,
the optimisers and schedules, checkpoints and logging are built by the helpers beside this
module. The loss itself runs in float32 whatever the precision of the model.

Resuming: calling :func:`fit` again on the same run directory continues from the newest
checkpoint and reproduces the uninterrupted run bitwise (sample order and augmentations are
functions of (seed, epoch, sample); the model, optimisers, schedules and RNGs are checkpointed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import Tensor, nn
from torch.utils.data import Dataset

from multivic.branch import JointEmbedding
from multivic.errors import ConfigError, MultivicError, NonFiniteLossError
from multivic.optim import OptimizerSpec
from multivic.run_dir import RunDir
from multivic.train.checkpoint import TrainState, resume, save_checkpoint
from multivic.train.data import build_loader
from multivic.train.optimizers import build_joint_optimizer
from multivic.train.progress import StepLogger
from multivic.train.schedule import build_schedules
from multivic.train.settings import TrainSettings

logger = logging.getLogger("multivic")

# Below this many rows the variance and covariance estimates of a step get noisy.
MIN_RECOMMENDED_BATCH = 64


@dataclass
class FitResult:
    model: JointEmbedding  # unwrapped, on the training device
    accelerator: Accelerator
    epoch: int  # completed epochs
    step: int  # completed optimiser steps
    resumed_from: str | None  # the checkpoint this call started from


def fit(
    model: JointEmbedding,
    train_set: Dataset,
    run_dir: RunDir,
    optimizers: Sequence[OptimizerSpec],
    settings: TrainSettings,
    collate_fn: Callable | None = None,
) -> FitResult:
    """Train ``model`` on pairs of views from ``train_set`` and checkpoint into ``run_dir``.

    Args:
        model: its weights must already be the same on every process (build it after seeding).
        train_set: items ``(view_a, view_b)``; its transforms draw from the global RNGs, which
            are seeded per sample (see multivic.train.data).
        optimizers: one spec over the whole model, or one per branch; each has its own schedule
            (linear warm-up, then cosine to final_lr_ratio × peak), with the peak at
            base_lr × batch_size × grad_accum_steps / 256.
        collate_fn: batches the pairs (needed when a side is not a tensor, e.g. captions).
    """
    s = settings
    accelerator = Accelerator(mixed_precision=s.mixed_precision, gradient_accumulation_steps=s.grad_accum_steps, cpu=s.cpu)
    # Per process: dropout masks differ between ranks. The weights were made before, and DDP
    # starts every rank from rank 0's anyway.
    set_seed(s.seed, device_specific=True)
    world = _check_batch(s, len(train_set), accelerator)  # type: ignore[arg-type]
    loader, sampler = build_loader(
        train_set, s.batch_size // world, world * s.grad_accum_steps, s.seed, s.num_workers,
        accelerator.device.type == "cuda", collate_fn,
    )
    if s.sync_batchnorm and world > 1 and accelerator.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = build_joint_optimizer(optimizers, s.samples_per_step)
    model, loader, prepared = accelerator.prepare(model, loader, optimizer)
    steps_per_epoch = len(loader) // s.grad_accum_steps  # exact: the loader keeps whole steps
    schedules = build_schedules(optimizer.parts, optimizers, steps_per_epoch, s.epochs)
    state = TrainState()
    accelerator.register_for_checkpointing(*schedules, state)
    resumed_from = resume(accelerator, run_dir, state)
    log = StepLogger(accelerator, run_dir, state.step, steps_per_epoch * s.epochs, s)

    for epoch in range(state.epoch, s.epochs):
        model.train()
        loader.set_epoch(epoch)
        sampler.set_epoch(epoch)  # Accelerate's shard wrapper does not pass the epoch on
        for view_a, view_b in loader:
            with accelerator.accumulate(model):
                loss, metrics = _forward(accelerator, model, view_a, view_b, state.step, epoch)
                accelerator.backward(loss)  # divides by grad_accum_steps: the window's mean
                prepared.step()  # a no-op until the window's last micro-batch
                prepared.zero_grad(set_to_none=True)
            if accelerator.sync_gradients:
                lrs = {spec.label: sched.get_last_lr()[0] for spec, sched in zip(optimizers, schedules)}
                for sched in schedules:
                    sched.step()
                state.step += 1
                log.step(state.step, epoch, lrs, metrics)
        state.epoch = epoch + 1
        if state.epoch % s.checkpoint_every == 0 or state.epoch == s.epochs:
            save_checkpoint(accelerator, run_dir, f"epoch_{state.epoch:04d}", s.keep_checkpoints)
    log.close()
    accelerator.wait_for_everyone()
    return FitResult(accelerator.unwrap_model(model), accelerator, state.epoch, state.step, resumed_from)


def _forward(accelerator: Accelerator, model: nn.Module, view_a: Any, view_b: Any, step: int, epoch: int) -> tuple[Tensor, dict[str, Tensor]]:
    """The autocast forward pass; divergence becomes a one-line error naming the step."""
    with accelerator.autocast():
        try:
            return model(view_a, view_b)
        except NonFiniteLossError as exc:
            raise MultivicError(
                f"training diverged at step {step} (epoch {epoch}): {exc}; "
                "lower optim.base_lr or use train.mixed_precision=no, and resume from the last checkpoint"
            ) from None


def _check_batch(s: TrainSettings, num_samples: int, accelerator: Accelerator) -> int:
    """Refuse batch settings the data or the processes cannot honour; warn about small batches.
    Returns the number of processes."""
    world = accelerator.num_processes
    if s.batch_size % world:
        raise ConfigError(f"train.batch_size={s.batch_size} must be divisible by the {world} processes")
    s.check_data_size(num_samples)
    if s.batch_size < MIN_RECOMMENDED_BATCH and accelerator.is_main_process:
        logger.warning(
            "the variance and covariance terms see %d rows per step (train.batch_size); "
            "below %d their estimates are noisy and VICReg trains worse",
            s.batch_size,
            MIN_RECOMMENDED_BATCH,
        )
    return world
