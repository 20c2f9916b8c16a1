"""``multivic eval``: the data format's evaluation protocol on a run's exported branches."""

from __future__ import annotations

import torch

from multivic.build import build_data
from multivic.config import RecipeConfig, load_config
from multivic.errors import RunDirError
from multivic.evaluation.protocols import PROTOCOLS, EvalSettings
from multivic.export import export_dir_of, exported_branch_names, load_branch
from multivic.modalities import Modality
from multivic.formats import DataSetup
from multivic.run_dir import RunDir


def load_run_config(run_dir: RunDir, overrides: list[str] | None = None) -> RecipeConfig:
    if not run_dir.config.is_file():
        raise RunDirError(f"{run_dir.root} is not a multivic run directory (no config.yaml): pass the --output-dir of a training run")
    return load_config(run_dir.config, overrides, legacy=True)


def eval_settings(cfg: RecipeConfig) -> EvalSettings:
    e = cfg.eval
    return EvalSettings(
        batch_size=e.batch_size, num_workers=cfg.data.num_workers, knn_k=e.knn_k, knn_temperature=e.knn_temperature,
        linear_epochs=e.linear_epochs, linear_lr=e.linear_lr, linear_weight_decay=e.linear_weight_decay,
        max_train_samples=e.max_train_samples, seed=cfg.seed, cross_validate=e.cross_validate,
        retrieval_space=e.retrieval_space,
    )


def evaluate(
    cfg: RecipeConfig, run_dir: RunDir, device: torch.device | None = None, data: DataSetup | None = None
) -> dict[str, float]:
    """Evaluate every exported branch of ``run_dir`` on the recipe's data; update metrics.json."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = exported_branch_names(run_dir.root)
    if not names:
        raise RunDirError(f"{run_dir.root} has no exported branches yet: train it first (multivic train ... --output-dir {run_dir.root})")
    data = data or build_data(cfg)
    branches = {n: load_branch(run_dir.root, n, device) for n in names}
    for name, branch in branches.items():
        branch.preprocess = run_pipeline(name, branch.modality, data.modalities, run_dir)
    metrics = run_dir.read_metrics()
    metrics.update(PROTOCOLS[data.format.protocol](data, branches, device, eval_settings(cfg)))
    run_dir.write_metrics(metrics)
    return metrics


def run_pipeline(name: str, modality_name: str, modalities: dict[str, Modality], run_dir: RunDir) -> Modality:
    """The input pipeline of exported branch ``name`` as the run config defines it, so ``data.*``
    overrides of ``multivic eval`` apply to reading and viewing alike, with the fitted state (a
    tokenizer) of its export, or of the run directory for exports without one (multivic 0.1)."""
    modality = modalities.get(modality_name)
    if modality is None:
        raise RunDirError(f"branch {name!r} reads {modality_name!r}, which the data format of {run_dir.root} does not provide")
    if modality.needs_fitting and not modality.is_fitted():
        exported = export_dir_of(run_dir.root) / f"{name}.state"
        modality.load(exported if exported.is_dir() else run_dir.modality_state(modality_name))
    return modality


def format_metrics(metrics: dict[str, float]) -> str:
    """A small table: one row per branch, one column per metric."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        branch, _, metric = key.rpartition("/")
        rows.setdefault(branch or "both", {})[metric] = value
    columns = ["linear_top1", "linear_top5", "knn_top1", "linear_top1_cv5_seen", "knn_top1_cv5_seen", "std_mean", "effective_rank"]
    columns += sorted({m for r in rows.values() for m in r} - set(columns))
    columns = [c for c in columns if any(c in r for r in rows.values())]
    width = max([6] + [len(b) for b in rows])
    cols = {c: max(16, len(c) + 2) for c in columns}
    lines = ["branch".ljust(width) + "".join(c.rjust(cols[c]) for c in columns)]
    for branch, vals in sorted(rows.items()):
        cells = "".join((f"{vals[c]:.2f}" if c in vals else "-").rjust(cols[c]) for c in columns)
        lines.append(branch.ljust(width) + cells)
    return "\n".join(lines)
