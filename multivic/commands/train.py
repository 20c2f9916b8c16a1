"""``multivic train``: a recipe into a run directory: train (or resume), export, evaluate.

Every check that can fail on user input (config, encoders, data) runs before the run
directory is touched, so a mistake never damages an existing run.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from multivic.branch import JointEmbedding
from multivic.build import (
    build_collate,
    build_data,
    build_model,
    build_optimizer_specs,
    build_train_dataset,
    build_train_settings,
    fit_modalities,
    save_modalities,
)
from multivic.commands.evaluate import evaluate
from multivic.config import RecipeConfig, TrainConfig, flatten, load_config, resumable_keys, to_container, to_yaml
from multivic.errors import MultivicError, RunDirError
from multivic.export import export_branch
from multivic.preflight import check_precision, check_run, launcher_precision
from multivic.run_dir import LOCK_FILE, RunDir, atomic_write_text, launch_rank
from multivic.train import TrainSettings, fit
from multivic.train.trackers import finish_trackers, log_row

logger = logging.getLogger("multivic")


def _check_can_create(folder: Path) -> None:
    """The nearest existing ancestor of ``folder`` must be a writable folder."""
    parent = folder.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise RunDirError(
            f"--output-dir {folder} cannot be created: {parent} is a file, not a folder; choose another --output-dir"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise RunDirError(
            f"--output-dir {folder} cannot be created: {parent} is not writable; choose another --output-dir"
        )


def _check_not_inside_another_run(folder: Path) -> None:
    """A run directory nested in another run's folders that the other run rewrites or prunes
    (checkpoints/, export/, report/, ...) would be deleted or overwritten by it."""
    real = Path(os.path.realpath(folder))
    for parent in real.parents:
        if (parent / "config.yaml").is_file() and (parent / "checkpoints").is_dir() and parent != real:
            inner = real.relative_to(parent).parts[0]
            if inner in ("checkpoints", "export", "report", "eval_examples", "trackers", "modalities"):
                raise RunDirError(
                    f"--output-dir {folder} is inside the run directory {parent} ({inner}/), which that run "
                    "rewrites or prunes: choose a folder outside it"
                )


def check_run_dir(run_dir: RunDir, cfg: RecipeConfig) -> None:
    """Refuse to train into a folder that is not this recipe's run directory, or that cannot be
    written; reads only, so a refused command changes nothing."""
    _check_not_inside_another_run(run_dir.root)
    if run_dir.root.exists() and not run_dir.root.is_dir():
        raise RunDirError(f"--output-dir {run_dir.root} is an existing file, not a folder: choose another --output-dir")
    if not run_dir.root.exists():
        _check_can_create(run_dir.root)
        return
    if not os.access(run_dir.root, os.W_OK | os.X_OK):
        raise RunDirError(
            f"--output-dir {run_dir.root} is not writable: choose another --output-dir or fix its permissions"
        )
    if not run_dir.config.is_file():
        if any(p.name != LOCK_FILE for p in run_dir.root.iterdir()):  # .lock: a process starting (or killed) there
            raise RunDirError(
                f"{run_dir.root} exists, is not empty and is not a multivic run directory: choose another --output-dir"
            )
        return
    try:  # resolved like the new one, so defaults and keys added since compare equal
        # Its `imports:` are compared, never imported: a file in a run directory runs no code.
        # (This recipe's own imports are loaded by now, so the plug-ins a matching run names resolve.)
        old_cfg = load_config(run_dir.config, ["imports=[]"], legacy=True)
        old = flatten(to_container(old_cfg))
        old["imports"] = json.dumps(list(OmegaConf.load(run_dir.config).get("imports") or []))
    except (MultivicError, OmegaConfBaseException) as exc:
        raise RunDirError(f"{run_dir.config} cannot be read ({exc}): choose another --output-dir") from None
    new = flatten(to_container(cfg))
    # The keys the schema and the data plug-ins declare resumable: how long, how it is watched and
    # evaluated, and where the data is mounted, but not what is trained.
    may_change = resumable_keys(old_cfg) | resumable_keys(cfg)
    for key in sorted(set(old) | set(new)):
        if key in may_change:
            continue
        if old.get(key) != new.get(key):
            raise RunDirError(
                f"{run_dir.root} was made with {key}={old.get(key)!r}, this command asks {key}={new.get(key)!r}: "
                "use another --output-dir, or the same settings to resume"
            )


def _write_report(run_dir: RunDir) -> None:
    """RUN_DIR/report/: figures and pages of the finished run (multivic report); a failure there
    is a warning, never a lost run."""
    from multivic.report import write_report

    try:
        report = write_report(run_dir.root)
        logger.info("report: %s", report.html)
    except Exception as exc:  # noqa: BLE001 - the run itself is complete and exported
        logger.warning("the report could not be written (%s); run `multivic report %s` to retry", exc, run_dir.root)


def train(cfg: RecipeConfig, output_dir: str | Path, progress: bool = True) -> dict[str, float]:
    """Train (or resume) the recipe into ``output_dir``, export the branches, evaluate.

    Returns the metrics written to metrics.json (empty when evaluation is disabled).
    """
    run_dir = RunDir(output_dir)
    check_run_dir(run_dir, cfg)
    # One writer per run directory, held to the end (export, evaluation, report included); a
    # second process is refused here, before it reads or writes anything of the run.
    with run_dir.lock("multivic train"):
        check_run_dir(run_dir, cfg)  # again under the lock: another process may have written it since
        return _train_locked(cfg, run_dir, progress)


def _run_device(settings: TrainSettings) -> torch.device:
    """Where this process will train: its GPU when there is one (and train.cpu is off), else the CPU."""
    if settings.cpu or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def _preflight(
    cfg: RecipeConfig, settings: TrainSettings, model: JointEmbedding, train_set: Any, collate: Any
) -> TrainSettings:
    """The checks before anything is written (multivic.preflight): the launcher's precision
    against the recipe's, a precision the device can run, both branches on two real training
    pairs, and the step's memory against what the device has free. Returns the settings with
    the precision the run uses (also recorded in ``cfg``, so config.yaml says what ran)."""
    precision = launcher_precision(settings.mixed_precision, TrainConfig().mixed_precision)
    if precision != settings.mixed_precision:
        cfg.train.mixed_precision = precision
        settings = dataclasses.replace(settings, mixed_precision=precision)
    device = _run_device(settings)
    check_precision(settings.mixed_precision, device)
    branches = [("model.branch_a", cfg.model.branch_a.encoder, model.branch_a, 0)]
    if not model.shared:
        branches.append(("model.branch_b", cfg.model.branch_b.encoder, model.branch_b, 1))
    optims = [cfg.optim.name] + [b.optim.name for b in (cfg.model.branch_a, cfg.model.branch_b) if b.optim]
    check_run(
        model,
        branches,
        train_set,
        collate,
        device,
        rows_per_process=max(1, settings.batch_size // int(os.environ.get("WORLD_SIZE", "1"))),
        optimizer_states=2 if "adamw" in optims else 1,
        memory_keys="train.batch_size (with train.grad_accum_steps to keep the batch), data.image_size, "
        "or the expander widths (model.branch_*.expander)",
    )
    return settings


def _train_locked(cfg: RecipeConfig, run_dir: RunDir, progress: bool) -> dict[str, float]:
    data = build_data(cfg)
    fit_modalities(cfg, data, run_dir.modality_state)  # e.g. a vocabulary of the training captions
    set_seed(cfg.seed)  # the model's initial weights depend on the seed alone
    model = build_model(cfg, data)
    train_set = build_train_dataset(cfg, data)
    collate = build_collate(cfg, data)
    if cfg.eval.enabled:  # fail on broken evaluation data now, not after training
        data.format.check_evaluation_data(data.modalities)
    settings = build_train_settings(cfg, progress=progress)
    settings.check_data_size(len(train_set))  # type: ignore[arg-type]
    settings = _preflight(cfg, settings, model, train_set, collate)

    run_dir.root.mkdir(parents=True, exist_ok=True)
    if launch_rank() == 0:  # the lock holder writes; the other processes of a launch only read
        atomic_write_text(run_dir.config, to_yaml(cfg))
        save_modalities(data, run_dir.modality_state)
    hparams = flatten(to_container(cfg))
    result = fit(model, train_set, run_dir, build_optimizer_specs(cfg, model), settings, collate, hparams)
    metrics: dict[str, float] = {}
    try:
        if result.accelerator.is_main_process:
            for branch in result.model.branches().values():
                export_branch(
                    branch, run_dir.export, branch.encoder_name, branch.encoder_kwargs, imports=list(cfg.imports)
                )
            if cfg.eval.enabled:
                metrics = evaluate(cfg, run_dir, result.accelerator.device, data)
                log_row(result.accelerator, {f"eval/{k}": v for k, v in metrics.items()}, result.step)
            if result.step > 0:
                _write_report(run_dir)
    finally:
        finish_trackers(result.accelerator)
    result.accelerator.wait_for_everyone()
    return metrics
