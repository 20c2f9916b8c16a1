"""The scalar settings of a training run, in one typed value.

Its fields are the recipe's keys under the same names, and it has no defaults of its own: the
recipe schema (:mod:`multivic.config`) holds them, and :func:`multivic.build.build_train_settings`
builds a value from a recipe, or from the schema's defaults for code that calls ``fit`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from multivic.errors import ConfigError


@dataclass(frozen=True)
class TrainSettings:
    """How :func:`multivic.train.fit` trains; what it trains comes in as arguments.

    Every field but ``progress`` is the recipe key ``train.<name>``, except ``num_workers``,
    ``strict`` and ``max_bad_fraction`` (``data.<name>``) and ``seed`` (top level).

    Attributes:
        epochs: passes over the training set (a resumed run continues up to this many).
        batch_size: the global batch of one forward pass, split evenly over processes; the
            variance and covariance terms see all of it (the loss gathers across processes).
        grad_accum_steps: micro-batches averaged into one optimiser step. An optimiser step
            therefore sees batch_size × grad_accum_steps samples, and the learning rate's peak
            is base_lr × that / 256.
        mixed_precision: "no", "bf16" or "fp16" (Accelerate's autocast; the loss stays float32).
        num_workers: data-loading worker processes per training process (persistent).
        seed: sample order, augmentations and dropout derive from it.
        log_every: a history.csv row every this many optimiser steps, and at the last step.
        checkpoint_every: a checkpoint every this many epochs, and after the last epoch.
        checkpoint_every_steps: also a checkpoint every this many optimiser steps (0: off).
        keep_checkpoints: how many of the newest checkpoints stay on disk.
        background_checkpoints: the main process writes a checkpoint's files on a thread from
            copies taken at its step while training goes on (host memory: one more copy of the
            weights and optimiser state); False: training waits for the write.
        on_nonfinite: "stop" (raise, naming the term, branch and step) or "skip" the step.
        max_nonfinite_in_row: with "skip", stop after this many skipped steps in a row.
        clip_grad_norm: clip the global gradient norm to this before each step (None: off).
        strict: stop on the first unreadable sample instead of replacing it.
        max_bad_fraction: stop when more than this fraction of the split is unreadable in an epoch.
        alarm_min_std, alarm_min_rankme_fraction: the collapse alarm's thresholds (see
            multivic.train.collapse_alarm): a logged step's per-dimension std (mean) under the
            first, or its RankMe under the second × min(rows, width), is flagged.
        sync_batchnorm: on several CUDA processes, batch norm uses the global batch's statistics,
            as the released code does (PyTorch's SyncBatchNorm runs on CUDA only).
        cpu: train on the CPU even when an accelerator is present.
        progress: show a progress bar (main process only).
        trackers: Accelerate tracker names (tensorboard, wandb, mlflow, ...) that also receive
            the history rows; empty: history.csv only (see multivic.train.trackers).
    """

    epochs: int
    batch_size: int
    grad_accum_steps: int
    mixed_precision: str
    num_workers: int
    seed: int
    log_every: int
    checkpoint_every: int
    checkpoint_every_steps: int
    keep_checkpoints: int
    background_checkpoints: bool
    on_nonfinite: str
    max_nonfinite_in_row: int
    clip_grad_norm: float | None
    strict: bool
    max_bad_fraction: float
    alarm_min_std: float
    alarm_min_rankme_fraction: float
    sync_batchnorm: bool
    cpu: bool
    progress: bool
    trackers: tuple[str, ...]

    @property
    def samples_per_step(self) -> int:
        """Samples behind one optimiser step, over all processes and micro-batches."""
        return self.batch_size * self.grad_accum_steps

    def check_data_size(self, num_samples: int) -> None:
        """Refuse a training split too small for one optimiser step (before anything is written)."""
        if self.epochs > 0 and num_samples < self.samples_per_step:
            accum = f" × train.grad_accum_steps={self.grad_accum_steps}" if self.grad_accum_steps > 1 else ""
            raise ConfigError(
                f"the training split has {num_samples} samples, fewer than train.batch_size={self.batch_size}{accum}: "
                "lower the batch size"
            )
