"""Checkpoints that load without running code, are written atomically, and resume at any step.

A checkpoint is a folder under ``checkpoints/``::

    epoch_0003/ or step_00001250/
      model.safetensors    the unwrapped model's weights (a shared branch stored once)
      optimizer.pt         every optimiser part's state; loaded with torch.load(weights_only=True)
      rng_<rank>.pt        that process's torch (CPU and CUDA), Python and NumPy RNG states,
                           as tensors and ints; loaded with weights_only=True
      trainer.json         counters (epoch, step, steps done in the epoch, skipped steps, bad
                           samples), the schedules' and the GradScaler's state; written last

Why not Accelerate's ``save_state``: it stores the RNG states and the registered custom states
with full pickle, so a crafted file in a run directory would run code on resume. Only what a
DDP run needs is here (one process's weights and optimiser state, every process's RNGs).

Sample order and augmentations are functions of (seed, epoch, sample) (see
multivic.data.loader), so a checkpoint taken in the middle of an epoch resumes at the exact
batch: the sampler skips the steps already done and the remaining batches are the ones the
uninterrupted run would have drawn.

Atomicity: every process writes into ``<name>.tmp/``; the main process writes trainer.json,
renames the folder, replaces LATEST, and only then removes older checkpoints. ``*.tmp``
folders left by a kill are removed when the next run starts. By default the main process's
part runs on a thread (multivic.train.background_writer) from CPU copies taken at the
checkpoint's step, so training does not wait for the disk; a kill during that write leaves
LATEST naming the previous checkpoint, and the resumed run redoes the steps since.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import pickle  # only for its error type: nothing here unpickles beyond weights_only
import random
import re
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from accelerate import Accelerator
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from multivic.errors import RunDirError
from multivic.files import check_regular_file, is_present, read_json_file, read_text_file
from multivic.run_dir import MAX_POINTER_FILE, RunDir, atomic_write_text
from multivic.train.background_writer import BackgroundWriter

logger = logging.getLogger("multivic")

FORMAT_VERSION = 2
TRAINER_FILE = "trainer.json"
# The names multivic gives checkpoint folders (epoch_0003, step_000001250): LATEST must hold one.
CHECKPOINT_NAME = re.compile(r"(epoch|step)_\d{1,12}")


@dataclass
class TrainState:
    """Where training stands; saved in trainer.json."""

    epoch: int = 0  # the epoch in progress (= epochs completed when steps_in_epoch is 0)
    steps_in_epoch: int = 0  # optimiser steps of ``epoch`` already done
    step: int = 0  # optimiser steps done in all (skipped non-finite steps included)
    skipped_steps: int = 0  # steps skipped for a non-finite loss or gradient (train.on_nonfinite=skip)
    skipped_in_row: int = 0
    bad_samples: int = 0  # unreadable samples replaced so far (data faults), over all processes
    bad_in_epoch: int = 0  # of which in ``epoch``


@dataclass
class Checkpoint:
    """A complete checkpoint folder and its trainer.json."""

    path: Path
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["state"]["step"])


def _fix(folder: Path) -> str:
    return (
        f"delete {folder} (and fix {folder.parent / 'LATEST'}) to resume from an older checkpoint, "
        "or train into a new --output-dir"
    )


def _read_checkpoint(folder: Path) -> Checkpoint | None:
    """The checkpoint in ``folder``; None when it is not a complete one of this format (no
    trainer.json yet: a kill while it was written; or another format). A trainer.json that is
    there but damaged or tampered (not JSON, wrong types, negative counters, not a regular file)
    is a RunDirError naming it."""
    path = folder / TRAINER_FILE
    if folder.is_symlink() or not folder.is_dir() or not is_present(path, _fix(folder)):
        return None
    meta = read_json_file(path, _fix(folder))
    if meta.get("format") != FORMAT_VERSION:
        return None
    problem = _meta_problem(meta)
    if problem:
        raise RunDirError(f"{path} is damaged or was altered ({problem}): {_fix(folder)}")
    return Checkpoint(folder, meta)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with the shape of trainer.json's content (None when nothing)."""
    state = meta.get("state")
    if not isinstance(state, dict):
        return "no 'state' object"
    known = {f.name for f in fields(TrainState)}
    unknown = sorted(set(state) - known)
    if unknown:
        return f"unknown counter {unknown[0]!r}"
    if "step" not in state:
        return "no step counter"
    for name, value in state.items():
        if not _count(value):
            return f"counter {name} is {value!r}, not a count"
    if state.get("skipped_steps", 0) > state["step"] or state.get("steps_in_epoch", 0) > state["step"]:
        return "more skipped steps or steps in the epoch than steps"
    if state.get("bad_in_epoch", 0) > state.get("bad_samples", 0) or state.get("skipped_in_row", 0) > state.get(
        "skipped_steps", 0
    ):
        return "inconsistent counters"
    if not (_count(meta.get("world_size")) and meta["world_size"] >= 1):
        return f"world_size is {meta.get('world_size')!r}"
    if not _count(meta.get("accelerator_step", 0)):
        return f"accelerator_step is {meta.get('accelerator_step')!r}"
    schedules = meta.get("schedules")
    if not isinstance(schedules, list) or not all(isinstance(s, dict) for s in schedules):
        return "schedules is not a list of objects"
    for i, schedule in enumerate(schedules):
        lrs = schedule.get("base_lrs")
        if not (isinstance(lrs, list) and lrs and all(_finite(v) and v >= 0 for v in lrs)):
            return f"schedule {i} has no finite base_lrs >= 0"
        if not all(_finite(v) and v >= 0 for v in schedule.get("_last_lr", [0.0]) or [0.0]):
            return f"schedule {i} has a learning rate that is not a finite number >= 0"
        if not _count(schedule.get("last_epoch")):
            return f"schedule {i} has last_epoch {schedule.get('last_epoch')!r}"
    scaler = meta.get("scaler")
    if scaler is not None:
        if not isinstance(scaler, dict) or not all(_finite(v) for v in scaler.values() if not isinstance(v, bool)):
            return "the gradient scaler's state is not finite numbers"
        if scaler.get("scale", 1.0) <= 0:
            return "the gradient scaler's scale is not > 0"
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def complete_checkpoints(run_dir: RunDir) -> list[Checkpoint]:
    """Every complete checkpoint of the run, oldest (fewest steps) first. A damaged one is left
    out with a warning (it is an error only where it would be resumed from: LATEST's)."""
    if not run_dir.checkpoints.is_dir():
        return []
    found = []
    for p in run_dir.checkpoints.iterdir():
        if not p.is_dir() or p.is_symlink() or p.name.endswith(".tmp"):
            continue
        try:
            found.append(_read_checkpoint(p))
        except RunDirError as exc:
            logger.warning("left out checkpoint %s: %s", p.name, exc)
    return sorted((c for c in found if c is not None), key=lambda c: (c.step, c.path.name))


def read_latest(run_dir: RunDir) -> tuple[str | None, str]:
    """The checkpoint name LATEST holds, and why not when it holds none ("" when LATEST is absent).

    LATEST is read as a regular file only (not a symbolic link, not a FIFO), of a few bytes, and
    its content is shown nowhere unless it is a checkpoint folder name (epoch_NNNN, step_N)."""
    pointer = run_dir.checkpoints / "LATEST"
    if not os.path.lexists(pointer):
        return None, ""
    try:
        text = read_text_file(pointer, "", limit=MAX_POINTER_FILE, follow_symlinks=False)
    except RunDirError as exc:  # its message: "<pointer> <reason>: " (no fix given)
        return None, str(exc).removeprefix(f"{pointer} ").removesuffix(": ")
    name = text.strip()
    if not CHECKPOINT_NAME.fullmatch(name):
        return None, "does not hold a checkpoint folder name (epoch_NNNN or step_NNNNNNNNN)"
    return name, ""


def find_resume_point(run_dir: RunDir) -> Checkpoint | None:
    """The checkpoint to resume from: the one LATEST names, or, when LATEST cannot be honoured,
    the newest complete one (with a warning). None for a run with no checkpoint at all.

    Raises RunDirError when the run directory holds checkpoints but none can be used (never
    starts again from step 0 over them: that would delete them), and when the checkpoint LATEST
    names is damaged or was altered.
    """
    pointer = run_dir.checkpoints / "LATEST"
    name, why = read_latest(run_dir)
    if name is not None:
        named = _read_checkpoint(run_dir.checkpoints / name)
        if named is not None:
            return named
        if _is_old_format(run_dir.checkpoints / name):
            raise RunDirError(
                f"{run_dir.checkpoints / name} was written by multivic 0.2 or older, whose checkpoints load with "
                "pickle; multivic no longer loads them: train into a new --output-dir (the exports of that run still "
                "load)"
            )
        why = f"names {name!r}, which is missing or incomplete"
    complete = complete_checkpoints(run_dir)
    if why:
        if complete:
            logger.warning(
                "%s %s; resuming from %s, the newest complete checkpoint", pointer, why, complete[-1].path.name
            )
            return complete[-1]
        what = why.replace("names ", "names checkpoint ", 1) if name is not None else why
        raise RunDirError(
            f"{pointer} {what}, and no other complete checkpoint "
            f"is in {run_dir.checkpoints}: restore it, or delete {run_dir.checkpoints} to train from step 0"
        )
    if complete:  # killed after the rename, before LATEST was written
        return complete[-1]
    leftovers = (
        [p for p in run_dir.checkpoints.glob("*") if p.is_dir() and not p.name.endswith(".tmp")]
        if run_dir.checkpoints.is_dir()
        else []
    )
    if any(_is_old_format(p) for p in leftovers):
        raise RunDirError(
            f"{run_dir.checkpoints} holds checkpoints of multivic 0.2 or older, which load with pickle; "
            "train into a new --output-dir"
        )
    return None


def _is_old_format(folder: Path) -> bool:
    return (folder / "pytorch_model.bin").is_file() or any(folder.glob("random_states_*.pkl"))


def remove_partial_checkpoints(run_dir: RunDir) -> None:
    """Delete ``*.tmp`` folders a killed checkpoint write left behind (main process only)."""
    if run_dir.checkpoints.is_dir():
        for tmp in run_dir.checkpoints.glob("*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Weights as safetensors, a shared branch stored once


def weights_to_save(model: nn.Module, copy: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``model.state_dict()`` as (tensors, aliases) for :func:`write_weights`. Entries that are
    views of one tensor (the two sides of a shared branch) appear once in ``tensors``;
    ``aliases`` maps the others to it. ``copy``: tensors are CPU copies that later optimiser
    steps cannot change (for a background write), not the live CPU parameters."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    first_of: dict[tuple, str] = {}
    for name, t in model.state_dict().items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
        if t.numel() and key in first_of:
            aliases[name] = first_of[key]
            continue
        first_of[key] = name
        tensors[name] = t.detach().to("cpu", copy=copy).contiguous()
    return tensors, aliases


def write_weights(tensors: dict[str, torch.Tensor], aliases: dict[str, str], path: Path) -> None:
    """Safetensors with the aliases in its metadata (safetensors refuses shared tensors, and its
    save_model mis-handles shared 0-d buffers)."""
    save_file(tensors, str(path), metadata={"aliases": json.dumps(aliases)})


def load_weights(model: nn.Module, path: Path) -> None:
    """Load what :func:`write_weights` wrote (of :func:`weights_to_save`) into ``model``
    (strictly: every key must match). Read on the CPU; load_state_dict copies onto the
    parameters' devices (safetensors takes no "cpu:1", the device name of a second CPU process)."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        # a tampered header: a ValueError, which load_checkpoint reports as a damaged checkpoint
        raise ValueError(f"its metadata 'aliases' is not a mapping of weight names ({str(aliases)[:40]})")
    state.update({name: state[target] for name, target in aliases.items()})
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------------
# RNG states as tensors and ints (what torch.load(weights_only=True) accepts)


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_rest": [int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    pos, has_gauss, cached = state["numpy_rest"]
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached))
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------


def save_checkpoint(
    accelerator: Accelerator,
    run_dir: RunDir,
    name: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedules: Sequence[LRScheduler],
    state: TrainState,
    keep: int = 1,
    writer: BackgroundWriter | None = None,
) -> None:
    """Write checkpoint ``name`` atomically, point LATEST at it, then keep the newest ``keep``
    checkpoints. A kill at any moment leaves LATEST naming a complete one.

    Every process writes its RNG state inline. The main process's files (weights, optimiser
    state, trainer.json), the rename and LATEST are written inline without ``writer``; with it,
    from CPU copies taken now, on the writer's thread while training goes on (the caller
    joins it: :meth:`BackgroundWriter.wait`). Either way the files hold the state of this step.

    ``model``: the prepared (possibly DDP-wrapped) model; ``optimizer``: the unprepared one.
    """
    if writer is not None:
        writer.wait()  # one write at a time; raises here if the previous one failed
    tmp = run_dir.checkpoints / f"{name}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng_{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()  # every process's RNG file is in tmp before the main process renames it
    if accelerator.is_main_process:
        copy = writer is not None
        weights, aliases = weights_to_save(accelerator.unwrap_model(model), copy=copy)
        optimizer_state = _cpu_copy(optimizer.state_dict()) if copy else optimizer.state_dict()
        meta = {
            "format": FORMAT_VERSION,
            "world_size": accelerator.num_processes,
            "accelerator_step": accelerator.step,
            "state": asdict(state),
            "schedules": [{k: v for k, v in s.state_dict().items() if k != "lr_lambdas"} for s in schedules],
            "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
        }
        job = functools.partial(
            _write_and_publish,
            run_dir,
            name,
            weights,
            aliases,
            optimizer_state,
            json.dumps(meta, indent=2) + "\n",
            keep,
        )
        if writer is None:
            job()
        else:
            writer.submit(job)
    if writer is None:
        accelerator.wait_for_everyone()


def _fsync(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _cpu_copy(value: Any) -> Any:
    """``value`` with every tensor replaced by a CPU copy (dicts, lists and tuples rebuilt)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu_copy(v) for v in value)
    return value


def _write_and_publish(
    run_dir: RunDir,
    name: str,
    weights: dict[str, torch.Tensor],
    aliases: dict[str, str],
    optimizer_state: dict[str, Any],
    trainer_json: str,
    keep: int,
) -> None:
    """The main process's part of a checkpoint: its files into ``<name>.tmp/`` (trainer.json
    last), the rename, LATEST, and the removal of checkpoints beyond the newest ``keep``."""
    final = run_dir.checkpoints / name
    tmp = run_dir.checkpoints / f"{name}.tmp"
    try:
        write_weights(weights, aliases, tmp / "model.safetensors")
        torch.save(optimizer_state, tmp / "optimizer.pt")
        for written in tmp.iterdir():  # on disk before LATEST may name them (a power loss, not only a kill)
            _fsync(written)
        atomic_write_text(tmp / TRAINER_FILE, trainer_json)
        if final.exists():  # a checkpoint of the same name from before a resume: replaced whole
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync(run_dir.checkpoints)
    except OSError as exc:
        raise RunDirError(
            f"writing checkpoint {tmp} failed ({exc}): free space or fix permissions in {run_dir.checkpoints}, "
            "then run the same command to resume from the last complete checkpoint (LATEST)"
        ) from exc
    atomic_write_text(run_dir.checkpoints / "LATEST", name + "\n")
    for old in complete_checkpoints(run_dir)[: -max(keep, 1)]:
        if old.path != final:
            shutil.rmtree(old.path, ignore_errors=True)


def load_checkpoint(
    accelerator: Accelerator,
    checkpoint: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedules: Sequence[LRScheduler],
    steps_per_epoch: int | None = None,
    epochs: int | None = None,
) -> TrainState:
    """Restore everything :func:`save_checkpoint` wrote into the live objects; return the counters.

    Every file is read as data (safetensors, weights_only, JSON) and checked against the run
    being resumed (:func:`check_against_run`): world size, counters within ``epochs`` ×
    ``steps_per_epoch`` (when given), the schedules' base learning rates and step, finite
    optimiser hyperparameters. A damaged or altered file is a one-line RunDirError naming it."""
    meta, folder = checkpoint.meta, checkpoint.path
    check_against_run(checkpoint, accelerator.num_processes, schedules, steps_per_epoch, epochs)
    rank_file = folder / f"rng_{accelerator.process_index}.pt"
    live_groups = [dict(g) for g in optimizer.param_groups]
    try:
        for name in ("model.safetensors", "optimizer.pt", rank_file.name):  # never hand a FIFO to a loader
            check_regular_file(folder / name, _fix(folder))
        load_weights(accelerator.unwrap_model(model), folder / "model.safetensors")
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
        set_rng_state(torch.load(rank_file, map_location="cpu", weights_only=True))
    except (
        OSError,
        RuntimeError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        EOFError,
        SafetensorError,
        pickle.UnpicklingError,
    ) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise RunDirError(
            f"checkpoint {folder} cannot be loaded ({reason}): it is damaged; delete it (and fix "
            f"{folder.parent / 'LATEST'}) to resume from an older checkpoint, or train into a new --output-dir"
        ) from None
    _check_optimizer(folder, live_groups, optimizer.param_groups, schedules, int(meta["state"]["step"]))
    _check_optimizer_state(folder, optimizer)
    for schedule, saved in zip(schedules, meta["schedules"]):
        # lr_lambdas: None keeps the live functions (they are rebuilt from the recipe, not saved).
        schedule.load_state_dict({**saved, "lr_lambdas": [None] * len(getattr(schedule, "lr_lambdas", []))})
    if meta.get("scaler") is not None and accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(meta["scaler"])
    accelerator.step = int(meta.get("accelerator_step", 0))
    return TrainState(**meta["state"])


def check_against_run(
    checkpoint: Checkpoint,
    world_size: int,
    schedules: Sequence[LRScheduler],
    steps_per_epoch: int | None = None,
    epochs: int | None = None,
) -> None:
    """Refuse a checkpoint whose trainer.json does not fit the run being resumed: another world
    size, counters past the recipe's ``epochs`` or an epoch's ``steps_per_epoch``, schedules
    whose base learning rates are not the recipe's or that are not at the checkpoint's step."""
    meta, folder = checkpoint.meta, checkpoint.path
    path = folder / TRAINER_FILE
    if meta.get("world_size") != world_size:
        raise RunDirError(
            f"{folder} was written by {meta.get('world_size')} processes, this run has {world_size}: "
            "resume with the same number of processes (the per-process RNG states differ)"
        )
    if len(meta["schedules"]) != len(schedules):
        raise RunDirError(
            f"{folder} holds {len(meta['schedules'])} learning-rate schedules, this run has {len(schedules)}"
        )
    state = meta["state"]
    step, epoch, in_epoch = state["step"], state.get("epoch", 0), state.get("steps_in_epoch", 0)
    if epochs is not None and epoch > epochs:
        raise RunDirError(
            f"{path} says {epoch} epochs are done, more than train.epochs={epochs}: if the run was longer, set "
            f"train.epochs={epoch} or more to resume it; otherwise the file was altered: {_fix(folder)}"
        )
    if steps_per_epoch is not None and in_epoch > steps_per_epoch:
        raise RunDirError(
            f"{path} says {in_epoch} steps of the epoch are done, an epoch has {steps_per_epoch}: "
            f"it was altered or made with other data: {_fix(folder)}"
        )
    if steps_per_epoch is not None and step < epoch + in_epoch and steps_per_epoch > 0:
        raise RunDirError(f"{path} says step {step} after {epoch} epochs: the counters were altered: {_fix(folder)}")
    for i, (schedule, saved) in enumerate(zip(schedules, meta["schedules"])):
        live = [float(v) for v in schedule.base_lrs]
        stored = saved["base_lrs"]
        if len(stored) != len(live) or not all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(stored, live)):
            raise RunDirError(
                f"{path} has base learning rate {stored[0]:g} in schedule {i}, the recipe gives {live[0]:g}: "
                f"it was altered or made by another recipe: {_fix(folder)}"
            )
        if saved["last_epoch"] != step:
            raise RunDirError(
                f"{path} has schedule {i} at step {saved['last_epoch']}, its counters at step {step}: "
                f"it was altered: {_fix(folder)}"
            )


_HYPER = ("initial_lr", "weight_decay", "momentum", "betas", "eps")


def _check_optimizer(
    folder: Path, live: list[dict[str, Any]], loaded: list[dict[str, Any]], schedules: Sequence[LRScheduler], step: int
) -> None:
    """optimizer.pt's hyperparameters are the recipe's (which built ``live``) and its learning
    rates finite, >= 0 and at most the peak where the schedules never exceed it."""
    path = folder / "optimizer.pt"
    if len(live) != len(loaded):
        raise RunDirError(f"{path} holds {len(loaded)} parameter groups, this run has {len(live)}: {_fix(folder)}")
    peak = max([1.0] + [float(f(step)) for s in schedules for f in getattr(s, "lr_lambdas", []) if callable(f)])
    for i, (want, got) in enumerate(zip(live, loaded)):
        for key in _HYPER:
            if key in want and not _same(want[key], got.get(key)):
                raise RunDirError(
                    f"{path} has {key}={got.get(key)!r} in parameter group {i}, the recipe gives "
                    f"{want[key]!r}: it was altered or made by another recipe: {_fix(folder)}"
                )
        lr, top = got.get("lr"), float(want.get("initial_lr", want.get("lr", 0.0))) * peak
        if not _finite(lr) or lr < 0 or lr > top * (1 + 1e-6) + 1e-12:
            raise RunDirError(
                f"{path} has learning rate {lr!r} in parameter group {i}, outside [0, {top:g}]: "
                f"it was altered: {_fix(folder)}"
            )


def _check_optimizer_state(folder: Path, optimizer: torch.optim.Optimizer) -> None:
    """optimizer.pt's per-parameter state (momentum, Adam's moments) has its parameter's shape and
    finite values: load_state_dict checks neither, and a tampered buffer would fail in the first
    step with a traceback, or turn the weights to NaN."""
    path = folder / "optimizer.pt"
    for i, (param, state) in enumerate(optimizer.state.items()):
        for key, value in state.items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0:  # counters such as Adam's step
                continue
            if value.shape != param.shape:
                raise RunDirError(
                    f"{path} has {key} of shape {list(value.shape)} for a parameter of shape {list(param.shape)} "
                    f"(parameter {i}): it was altered or made by another model: {_fix(folder)}"
                )
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise RunDirError(f"{path} has NaN or infinite {key} (parameter {i}): it was altered: {_fix(folder)}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if _finite(a) and _finite(b):
        return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        try:
            return bool(
                torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64))
            )
        except (TypeError, RuntimeError, ValueError):
            return False
    return a == b
