"""Pre-flight: the checks a run passes before its run directory is created or touched.

Mistakes that used to surface mid-training as raw tracebacks (an encoder returning
``[B, C, 1, 1]``, a ViT built for 224 px fed 32 px views, fp16 on a CPU) are found here by
pushing two real training pairs (the recipe's own files, views and collate) through each branch
on the CPU (the shapes are the same on every device, and no GPU memory is taken before the
trainer places the model), and reported as one line naming the branch and the key to change. The same forward pass
measures the activations a sample keeps, so the memory a step needs can be estimated against
what the machine has free.

Nothing here changes what training does: the random number generators are restored after the
check, batch-norm statistics are left alone (eval mode), and compiled encoders run eagerly.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from multivic.branch import Branch
from multivic.data.formats import PairedViews
from multivic.data.loader import preserved_rng
from multivic.data.streaming import StreamingSplit
from multivic.errors import ConfigError, MultivicError

logger = logging.getLogger("multivic")

PAIRS = 2  # training pairs pushed through the branches (two rows: batch norm needs more than one)
MAX_TRIES = 16  # samples tried to find PAIRS readable ones (unreadable samples are skipped in training too)


def first_pairs(train_set: Any, count: int = PAIRS) -> list[Any] | None:
    """The first ``count`` readable training pairs (views applied), or None when there are not
    that many among the first few samples. A streamed split gives its first shard's samples."""
    pairs: list[Any] = []
    if isinstance(train_set, PairedViews) and isinstance(train_set.samples, StreamingSplit):
        split = train_set.samples
        (mod_a, view_a), (mod_b, view_b) = train_set.side_a, train_set.side_b
        errors: list[str] = []
        for n, raw in enumerate(split.read_shard(split.shards[0], errors)):
            if len(pairs) == count or n >= MAX_TRIES:
                break
            with contextlib.suppress(MultivicError, OSError, ValueError):
                sample = split.decode(raw)
                pairs.append((view_a(sample[mod_a]), view_b(sample[mod_b])))
        return pairs if len(pairs) == count else None
    for index in range(min(len(train_set), MAX_TRIES)):
        if len(pairs) == count:
            break
        with contextlib.suppress(MultivicError, OSError, ValueError):
            pairs.append(train_set[index])
    return pairs if len(pairs) == count else None


def _shape(x: Any) -> str:
    return str(list(x.shape)) if isinstance(x, Tensor) else type(x).__name__


@dataclass
class BranchCheck:
    """What the check of one branch measured: the bytes of activations one sample keeps."""

    key: str
    activation_bytes_per_sample: int


def check_branch(key: str, encoder_name: str, branch: Branch, batch: Any) -> BranchCheck:
    """Push ``batch`` (two rows of this side's collated views) through ``branch`` on the CPU;
    a ConfigError naming ``key`` (``model.branch_a``) when the encoder cannot read it, returns
    anything but [rows, out_dim], or the expander does not take its output."""
    rows = PAIRS
    saved = 0

    def count(_module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal saved
        if isinstance(output, Tensor):
            saved += output.numel() * output.element_size()

    leaves = [m for m in branch.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    was_training = branch.training
    branch.eval()
    try:
        with torch.no_grad():
            x = batch
            if branch.channels_last and isinstance(x, Tensor) and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            try:
                y = branch.encoder.forward(x)  # forward, not __call__: a compiled encoder runs eagerly here
            except Exception as exc:  # noqa: BLE001 - any failure is the recipe's encoder against its data
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ConfigError(
                    f"{key} ({encoder_name}) cannot read this recipe's batches of {_shape(batch)} "
                    f"({type(exc).__name__}: {first[:200]}): match the data to the encoder (data.image_size, "
                    f"data.crop_seconds, ...) or the encoder to the data ({key}.encoder_kwargs)"
                ) from None
            width = int(getattr(branch.encoder, "out_dim", -1))
            if not isinstance(y, Tensor) or y.dim() != 2 or y.shape[0] != rows or y.shape[1] != width:
                raise ConfigError(
                    f"{key} ({encoder_name}) returns {_shape(y)} for {rows} inputs, but an encoder must return "
                    f"[batch, out_dim] = [{rows}, {width}]: flatten its output (torch.flatten(x, 1)) and make "
                    "out_dim its width"
                )
            branch.expander(y)
    finally:
        for hook in hooks:
            hook.remove()
        branch.train(was_training)
    return BranchCheck(key, saved // rows)


def available_memory(device: torch.device) -> int | None:
    """Bytes free for this process on ``device``: the GPU's free memory, or the host's available
    memory (Linux's MemAvailable); None when unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device.index if device.index is not None else 0)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def estimate_step_bytes(
    model: nn.Module, checks: Sequence[BranchCheck], rows_per_process: int, optimizer_states: int
) -> int:
    """A step's memory, roughly: weights, their gradients and ``optimizer_states`` state tensors
    each (AdamW 2, LARS 1), plus each branch's activations for ``rows_per_process`` rows kept for
    the backward pass (the outputs of its modules, as the check measured them)."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    activations = sum(c.activation_bytes_per_sample for c in checks) * rows_per_process
    return weights * (2 + optimizer_states) + activations


def warn_if_short_of_memory(need: int, free: int | None, where: str, keys: str) -> None:
    """A one-line warning when a step's estimated need exceeds what ``where`` has free."""
    if free is not None and need > free:
        logger.warning(
            "this run's step needs about %.1f GiB but the %s has %.1f GiB free: it may be killed for lack of "
            "memory; lower %s",
            need / 2**30,
            where,
            free / 2**30,
            keys,
        )


def check_precision(mixed_precision: str, device: torch.device) -> None:
    """fp16 autocast needs a CUDA GPU (on a CPU it runs as float32 and records fp16)."""
    if mixed_precision == "fp16" and device.type != "cuda":
        raise ConfigError(
            "train.mixed_precision=fp16 needs a CUDA GPU, and this run is on the CPU: use "
            "train.mixed_precision=bf16 (CPUs run it) or train.mixed_precision=no"
        )


def launcher_precision(recipe_value: str, recipe_default: str, environ: dict[str, str] | None = None) -> str:
    """The mixed precision a run uses, by one rule: a value the recipe or command line sets wins;
    a recipe that leaves ``train.mixed_precision`` at its default takes the launcher's
    (``accelerate launch --mixed_precision``). A disagreement is said aloud either way."""
    launcher = (environ if environ is not None else os.environ).get("ACCELERATE_MIXED_PRECISION", "").strip()
    if not launcher or launcher == recipe_value:
        return recipe_value
    if recipe_value == recipe_default:
        logger.warning("train.mixed_precision follows the launcher: %s (the recipe leaves it at its default)", launcher)
        return launcher
    logger.warning(
        "the launcher asks for mixed precision %s, the recipe for train.mixed_precision=%s: the recipe's is used",
        launcher,
        recipe_value,
    )
    return recipe_value


def check_run(
    model: nn.Module,
    sides: Sequence[tuple[str, str, Branch, int]],
    train_set: Any,
    collate: Callable[[list[Any]], Any] | None,
    device: torch.device,
    rows_per_process: int,
    optimizer_states: int,
    memory_keys: str,
) -> None:
    """Every pre-flight check of a run's model and data (see the module docstring). ``sides``:
    (config key, encoder name, branch, index of the pair's item it reads) of each distinct branch;
    ``device``: where the run will train (its free memory is checked)."""
    from torch.utils.data import default_collate

    with preserved_rng():
        pairs = first_pairs(train_set)
        if pairs is None:
            logger.info("pre-flight: no two readable training pairs among the first samples; checks skipped")
            return
        batch = (collate or default_collate)(pairs)
        checks = [check_branch(key, name, branch, batch[side]) for key, name, branch, side in sides]
    where = "GPU" if device.type == "cuda" else "machine"
    need = estimate_step_bytes(model, checks, rows_per_process, optimizer_states)
    warn_if_short_of_memory(need, available_memory(device), where, memory_keys)


__all__ = [
    "BranchCheck",
    "available_memory",
    "check_branch",
    "check_precision",
    "check_run",
    "estimate_step_bytes",
    "first_pairs",
    "launcher_precision",
]
