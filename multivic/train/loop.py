"""The training loop: one readable function on Hugging Face Accelerate.

prepare → resume → for each epoch: for each batch: autocast forward, backward, step, log,
checkpoint when due or asked to stop. Processes, devices, mixed precision and gradient
accumulation come from Accelerate; the loader, the optimisers and schedules, checkpoints,
logging, preemption, data faults and divergence are handled by the modules beside this one.
The loss itself runs in float32 whatever the precision of the model.

Resuming: calling :func:`fit` again on the same run directory continues from the newest
checkpoint, taken at an epoch's end or every ``checkpoint_every_steps`` steps, and reproduces the
uninterrupted run bitwise (sample order and augmentations are functions of (seed, epoch,
sample); the model, optimisers, schedules, RNGs and counters are checkpointed).

Streaming data (a training set over a :class:`multivic.data.streaming.StreamingSplit`, e.g. the
``webdataset`` format's shards) takes the iterable path of :mod:`multivic.data.loader`: each
process reads its own shards (the loader is not handed to Accelerate, which would shard or
dispatch it), the number of steps per epoch comes from the shards' plan, and a resume skips the
batches already done, without decoding them, and the shards none of whose samples are still due.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import Tensor, nn
from torch.utils.data import Dataset

from multivic.branch import JointEmbedding
from multivic.data.loader import build_loader, build_stream_loader, stop_workers, streaming_split
from multivic.errors import ConfigError, MultivicError, NonFiniteLossError, Preempted
from multivic.optim import OptimizerSpec
from multivic.run_dir import RunDir
from multivic.train.background_writer import BackgroundWriter
from multivic.train.checkpoint import (
    TrainState,
    find_resume_point,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)
from multivic.train.collapse_alarm import CollapseAlarm
from multivic.train.divergence import NonFiniteSteps, describe_metrics, gradient_norm, nonfinite_branches
from multivic.train.faults import DataFaults
from multivic.train.optimizers import build_joint_optimizer
from multivic.train.preemption import StopRequests
from multivic.train.progress import StepLogger
from multivic.train.schedule import build_schedules
from multivic.train.settings import TrainSettings
from multivic.train.trackers import finish_trackers, start_trackers, tracker_dir

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
    skipped_steps: int = 0  # non-finite steps skipped (train.on_nonfinite=skip)
    bad_samples: int = 0  # unreadable samples replaced


def fit(
    model: JointEmbedding,
    train_set: Dataset,
    run_dir: RunDir,
    optimizers: Sequence[OptimizerSpec],
    settings: TrainSettings,
    collate_fn: Callable | None = None,
    hparams: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` on pairs of views from ``train_set`` and checkpoint into ``run_dir``.

    Args:
        model: its weights must already be the same on every process (build it after seeding).
        train_set: items ``(view_a, view_b)``; its transforms draw from the global RNGs, which
            are seeded per sample (see multivic.data.loader). An item that raises is replaced
            by the next readable one and counted (see multivic.train.faults).
        optimizers: one spec over the whole model, or one per branch; each has its own schedule
            (linear warm-up, then cosine to final_lr_ratio × peak), with the peak at
            base_lr × batch_size × grad_accum_steps / 256.
        collate_fn: batches the pairs (needed when a side is not a tensor, e.g. captions).
        hparams: the run's settings as flat scalars, for ``settings.trackers``. The trackers
            stay open after a normal return (the caller logs its evaluation, then calls
            :func:`multivic.train.trackers.finish_trackers`); an exception closes them.

    Raises:
        Preempted: after SIGTERM or SIGUSR1, once the checkpoint of the current step is written.
    """
    s = settings
    accelerator = Accelerator(
        mixed_precision=s.mixed_precision,
        gradient_accumulation_steps=s.grad_accum_steps,
        cpu=s.cpu,
        log_with=list(s.trackers) or None,
        project_dir=tracker_dir(run_dir) if s.trackers else None,
    )
    # Per process: dropout masks differ between ranks. The weights were made before, and DDP
    # starts every rank from rank 0's anyway.
    set_seed(s.seed, device_specific=True)
    world = _check_batch(s, len(train_set), accelerator)  # type: ignore[arg-type]
    stream = streaming_split(train_set)
    if stream is None:
        loader, sampler = build_loader(
            train_set,
            s.batch_size // world,
            world * s.grad_accum_steps,
            s.seed,
            s.num_workers,
            accelerator.device.type == "cuda",
            collate_fn,
        )
    else:  # shards: each process reads its own (no Accelerate sharding or dispatching)
        loader, sampler = build_stream_loader(
            *stream,
            s.batch_size // world,
            world * s.grad_accum_steps,
            s.seed,
            s.num_workers,
            accelerator.device.type == "cuda",
            accelerator.process_index,
            world,
            accelerator.device,
            collate_fn,
        )
        if sampler.steps_per_epoch == 0 and s.epochs > 0:
            raise ConfigError(
                f"the shards give no whole step of train.batch_size={s.batch_size} per epoch over {world} processes × "
                f"{max(1, s.num_workers)} data-loading workers: lower the batch size or data.num_workers, or write "
                "more shards"
            )
    if s.sync_batchnorm and world > 1 and accelerator.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    fp16 = accelerator.mixed_precision == "fp16"
    if s.on_nonfinite == "skip" and not fp16 and hasattr(model.loss_fn, "check_finite"):
        model.loss_fn.check_finite = False  # every process must run its backward; gradients are checked instead
    optimizer = build_joint_optimizer(optimizers, s.samples_per_step)
    if stream is None:
        model, loader, prepared = accelerator.prepare(model, loader, optimizer)
    else:
        model, prepared = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    steps_per_epoch = sampler.steps_per_epoch
    schedules = build_schedules(optimizer.parts, optimizers, steps_per_epoch, s.epochs)

    if accelerator.is_main_process:
        remove_partial_checkpoints(run_dir)
    accelerator.wait_for_everyone()
    start = find_resume_point(run_dir)
    state = (
        TrainState()
        if start is None
        else load_checkpoint(
            accelerator, start, model, optimizer, schedules, steps_per_epoch=steps_per_epoch, epochs=s.epochs
        )
    )
    if start is not None and accelerator.is_main_process:
        logger.info("resumed from %s at epoch %d, step %d", start.path, state.epoch, state.step)

    # Checkpoint files reach disk on a thread while the next steps run (see background_writer).
    writer = BackgroundWriter() if s.background_checkpoints else None  # idle on the other processes
    # The streaming loader starts its workers every epoch (persistent ones start once, before any write).
    forks_each_epoch = s.num_workers > 0 and not getattr(loader, "persistent_workers", False)

    def checkpoint(name: str) -> None:
        _join_writer(accelerator, writer)  # one write at a time; a failed one stops every process here
        save_checkpoint(accelerator, run_dir, name, model, optimizer, schedules, state, s.keep_checkpoints, writer)

    def checkpoints_on_disk() -> None:
        """Every process returns once the last checkpoint is complete (before exiting)."""
        _join_writer(accelerator, writer)
        accelerator.wait_for_everyone()

    alarm = CollapseAlarm(
        {"a": unwrapped.branch_a.name, "b": unwrapped.branch_b.name},
        s.alarm_min_std,
        s.alarm_min_rankme_fraction,
        s.batch_size // world,
        unwrapped.branch_a.embedding_dim,
    )
    start_trackers(accelerator, run_dir, hparams or {})
    log = StepLogger(accelerator, run_dir, state.step, steps_per_epoch * s.epochs, s, alarm)
    epoch_size = len(train_set) if stream is None else sampler.samples_per_epoch  # type: ignore[arg-type, union-attr]
    faults = DataFaults(epoch_size, s.strict, s.max_bad_fraction)
    nonfinite = NonFiniteSteps(s.on_nonfinite, s.max_nonfinite_in_row)
    sampler.resume_at(state.epoch, state.steps_in_epoch)  # skips the steps a mid-epoch checkpoint already did
    try:
        with StopRequests() as stop:
            for epoch in range(state.epoch, s.epochs):
                model.train()
                loader.set_epoch(epoch)
                sampler.set_epoch(epoch)  # Accelerate's multi-process shard wrapper does not pass it on
                if forks_each_epoch:
                    _join_writer(accelerator, writer)  # never fork workers while the writer thread may hold a lock
                bad_window = None  # why the accumulation window in progress cannot be applied
                for batch, batch_faults in loader:
                    faults.record(batch, batch_faults)
                    with accelerator.accumulate(model):
                        # RankMe on the micro-batch whose statistics a history row reports.
                        unwrapped.record_rankme = accelerator.sync_gradients and log.due(state.step + 1)
                        loss, metrics = _forward(accelerator, model, *batch, state.step + 1, epoch)
                        accelerator.backward(loss)  # divides by grad_accum_steps: the window's mean
                        bad_window = bad_window or _nonfinite_loss(s, loss, metrics)
                        if accelerator.sync_gradients:  # the window's last micro-batch: step
                            bad_window = _clip_and_check(accelerator, model, unwrapped, s, fp16) or bad_window
                            if bad_window is None or fp16:  # fp16: the GradScaler skips overflowing steps itself
                                prepared.step()
                            prepared.zero_grad(set_to_none=True)
                    if not accelerator.sync_gradients:
                        continue
                    # One optimiser step done (or skipped): count, log, checkpoint or stop.
                    if bad_window is None:
                        nonfinite.applied(state)
                    else:
                        nonfinite.diverged(bad_window, state.step + 1, epoch, state)
                        bad_window = None
                    lrs = {spec.label: sched.get_last_lr()[0] for spec, sched in zip(optimizers, schedules)}
                    for sched in schedules:
                        sched.step()
                    state.step += 1
                    state.steps_in_epoch += 1
                    stop_now, new_faults, write_failed = _exchange(
                        accelerator, stop.requested, faults.pending, writer is not None and writer.failed
                    )
                    if write_failed:  # stop now, not at the next checkpoint, however far away
                        _join_writer(accelerator, writer)
                    faults.count(new_faults, state)
                    log.step(
                        state.step,
                        epoch,
                        lrs,
                        metrics,
                        {"skipped_steps": state.skipped_steps, "bad_samples": state.bad_samples},
                    )
                    if stop_now:
                        checkpoint(f"step_{state.step:09d}")
                        checkpoints_on_disk()  # a launcher may kill the others once one process exits
                        log.close()
                        raise Preempted(
                            f"stopped by a signal after step {state.step} (epoch {epoch}) with a checkpoint in "
                            f"{run_dir.checkpoints}: run the same command to resume"
                        )
                    if (
                        s.checkpoint_every_steps
                        and state.step % s.checkpoint_every_steps == 0
                        and state.steps_in_epoch < steps_per_epoch
                    ):
                        checkpoint(f"step_{state.step:09d}")
                state.epoch, state.steps_in_epoch, state.bad_in_epoch = epoch + 1, 0, 0
                if state.epoch % s.checkpoint_every == 0 or state.epoch == s.epochs:
                    checkpoint(f"epoch_{state.epoch:04d}")
            checkpoints_on_disk()  # inside StopRequests: a signal now does not kill the last write
    except BaseException:
        if writer is not None:
            writer.wait_quietly()  # the step's checkpoint still lands; the error that stopped training is raised
        finish_trackers(accelerator)
        raise
    finally:
        stop_workers(loader)
    log.close()
    accelerator.wait_for_everyone()
    return FitResult(
        unwrapped,
        accelerator,
        state.epoch,
        state.step,
        start.path.name if start else None,
        state.skipped_steps,
        state.bad_samples,
    )


def _forward(
    accelerator: Accelerator, model: nn.Module, view_a: Any, view_b: Any, step: int, epoch: int
) -> tuple[Tensor, dict[str, Tensor]]:
    """The autocast forward pass; divergence the objective reports becomes a one-line error
    naming the step (only under train.on_nonfinite=stop; with skip the trainer checks)."""
    with accelerator.autocast():
        try:
            return model(view_a, view_b)
        except NonFiniteLossError as exc:
            raise MultivicError(
                f"training diverged at step {step} (epoch {epoch}): {exc}; lower optim.base_lr, set "
                "train.clip_grad_norm or train.mixed_precision=no, or train.on_nonfinite=skip, and run the same "
                "command to resume from the last checkpoint"
            ) from None


def _nonfinite_loss(s: TrainSettings, loss: Tensor, metrics: dict[str, Tensor]) -> str | None:
    """Under on_nonfinite=skip (the objective's own check is off), why this loss cannot be used."""
    if s.on_nonfinite == "skip" and not bool(torch.isfinite(loss.detach())):
        return f"non-finite loss ({describe_metrics(metrics)})"
    return None


def _clip_and_check(
    accelerator: Accelerator, model: nn.Module, unwrapped: nn.Module, s: TrainSettings, fp16: bool
) -> str | None:
    """Clip the gradients when asked; say why the step cannot be applied, or None.

    The gradients are DDP's average, the same on every process, so every process decides the
    same. Under fp16 overflowing gradients are the GradScaler's business, not divergence.
    """
    if s.clip_grad_norm is not None:
        norm = accelerator.clip_grad_norm_(model.parameters(), s.clip_grad_norm)
    elif fp16:
        return None
    else:
        norm = gradient_norm(model)
    if fp16 or bool(torch.isfinite(norm)):
        return None
    return f"non-finite gradients in {', '.join(nonfinite_branches(unwrapped))}"


def _exchange(accelerator: Accelerator, stop: bool, faults: int, write_failed: bool) -> tuple[bool, int, bool]:
    """Whether any process was asked to stop, the data faults of all processes since the last
    call, and whether any process's checkpoint write has failed. One all-reduce of three
    numbers per step with several processes; none with one."""
    if accelerator.num_processes == 1:
        return stop, faults, write_failed
    flags = torch.tensor([float(stop), float(faults), float(write_failed)], device=accelerator.device)
    flags = accelerator.reduce(flags, "sum")
    return bool(flags[0] > 0), int(flags[1]), bool(flags[2] > 0)


def _join_writer(accelerator: Accelerator, writer: BackgroundWriter | None) -> None:
    """Wait for the checkpoint write in flight. When it failed on any process, raise on every
    process (the main process its own error), so that none waits for the others at a barrier."""
    if writer is None:
        return
    error = writer.join()
    failed = error is not None
    if accelerator.num_processes > 1:
        flag = accelerator.reduce(torch.tensor([float(failed)], device=accelerator.device), "sum")
        failed = bool(flag[0] > 0)
    if error is not None:
        raise error
    if failed:
        raise MultivicError(
            "another process could not write a checkpoint (its error is in its log); "
            "run the same command to resume from the last complete checkpoint"
        )


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
