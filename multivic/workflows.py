"""What the CLI commands do: train a recipe into a run directory, evaluate a run directory.

Every check that can fail on user input (config, encoders, data) runs before the run
directory is touched, so a mistake never damages an existing run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed
from omegaconf import OmegaConf

from multivic.config import RecipeConfig, load_config, to_container, to_yaml
from multivic.data.coco import read_coco
from multivic.data.image_folder import load_rgb
from multivic.data.image_views import image_eval_view
from multivic.errors import ConfigError, RunDirError
from multivic.evaluation.classification import evaluate_classification
from multivic.evaluation.retrieval import retrieval_recall, retrieval_recall_folds
from multivic.export import export_branch, exported_branch_names, load_branch
from multivic.recipe import (
    EvalSplits,
    build_collate,
    build_eval_splits,
    build_model,
    build_optimizer_specs,
    build_train_dataset,
    resolve_data_root,
    train_captions,
)
from multivic.run_dir import RunDir, atomic_write_text
from multivic.text.tokenizers import build_tokenizer, load_tokenizer, saved_tokenizer_exists
from multivic.trainer import fit

logger = logging.getLogger("multivic")

# Keys that may change between a run and its resumption: how long, how it is watched and
# evaluated, and where the data is mounted, but not what is trained.
RESUMABLE_CHANGES = ("train.epochs", "train.log_every", "train.keep_checkpoints", "data.num_workers", "data.root", "eval.")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def check_run_dir(run_dir: RunDir, cfg: RecipeConfig) -> None:
    """Refuse to train into a folder that is not this recipe's run directory."""
    if not run_dir.root.exists():
        return
    if not run_dir.config.is_file():
        if any(run_dir.root.iterdir()):
            raise RunDirError(
                f"{run_dir.root} exists, is not empty and is not a multivic run directory: choose another --output-dir"
            )
        return
    old = _flatten(OmegaConf.to_container(OmegaConf.load(run_dir.config), resolve=True))  # type: ignore[arg-type]
    new = _flatten(to_container(cfg))
    for key in sorted(set(old) | set(new)):
        if key.startswith(RESUMABLE_CHANGES):
            continue
        if old.get(key) != new.get(key):
            raise RunDirError(
                f"{run_dir.root} was made with {key}={old.get(key)!r}, this command asks {key}={new.get(key)!r}: "
                "use another --output-dir, or the same settings to resume"
            )


def train(cfg: RecipeConfig, output_dir: str | Path, progress: bool = True) -> dict[str, float]:
    """Train (or resume) the recipe into ``output_dir``, export the branches, evaluate.

    Returns the metrics written to metrics.json (empty when evaluation is disabled).
    """
    run_dir = RunDir(output_dir)
    check_run_dir(run_dir, cfg)
    data_root = resolve_data_root(cfg.data)
    train_set = build_train_dataset(cfg, data_root)
    tokenizer = None
    captions = train_captions(cfg, train_set)
    if captions is not None:  # a text side: a tokenizer of the training captions, kept with the run
        text_dir = _text_dir(run_dir)
        if saved_tokenizer_exists(text_dir):
            tokenizer = load_tokenizer(text_dir)
        else:
            tokenizer = build_tokenizer(cfg.data.tokenizer, captions, cfg.data.min_word_count, cfg.data.tokenizer_vocab_size)
    set_seed(cfg.seed)  # the model's initial weights depend on the seed alone
    model = build_model(cfg, len(tokenizer) if tokenizer is not None else None)
    collate = build_collate(cfg, tokenizer)
    if cfg.eval.enabled:  # fail on a broken evaluation split now, not after training
        if cfg.data.format == "coco":
            read_coco(data_root, "test")
        else:
            build_eval_splits(cfg, data_root)

    run_dir.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir.config, to_yaml(cfg))
    if tokenizer is not None and not saved_tokenizer_exists(_text_dir(run_dir)):
        tokenizer.save(_text_dir(run_dir))
    result = fit(
        model,
        train_set,
        run_dir,
        optimizers=build_optimizer_specs(cfg, model),
        epochs=cfg.train.epochs,
        batch_size=cfg.train.batch_size,
        grad_accum_steps=cfg.train.grad_accum_steps,
        mixed_precision=cfg.train.mixed_precision,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        log_every=cfg.train.log_every,
        checkpoint_every=cfg.train.checkpoint_every,
        keep_checkpoints=cfg.train.keep_checkpoints,
        sync_batchnorm=cfg.train.sync_batchnorm,
        cpu=cfg.train.cpu,
        progress=progress,
        collate_fn=collate,
    )
    metrics: dict[str, float] = {}
    if result.accelerator.is_main_process:
        for name, branch in result.model.branches().items():
            export_branch(branch, run_dir.export, branch.encoder_name, branch.encoder_kwargs, imports=list(cfg.imports))
        if cfg.eval.enabled:
            metrics = evaluate(cfg, run_dir, result.accelerator.device, data_root)
    result.accelerator.wait_for_everyone()
    return metrics


def load_run_config(run_dir: RunDir, overrides: list[str] | None = None) -> RecipeConfig:
    if not run_dir.config.is_file():
        raise RunDirError(f"{run_dir.root} is not a multivic run directory (no config.yaml): pass the --output-dir of a training run")
    return load_config(run_dir.config, overrides)


def evaluate(
    cfg: RecipeConfig, run_dir: RunDir, device: torch.device | None = None, data_root: Path | None = None
) -> dict[str, float]:
    """Evaluate every exported branch of ``run_dir`` on the recipe's data; write metrics.json."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = exported_branch_names(run_dir.root)
    if not names:
        raise RunDirError(f"{run_dir.root} has no exported branches yet: train it first (multivic train ... --output-dir {run_dir.root})")
    data_root = data_root or resolve_data_root(cfg.data)
    if cfg.data.format == "coco":
        metrics = run_dir.read_metrics()
        metrics.update(evaluate_retrieval(cfg, run_dir, names, device, data_root))
        run_dir.write_metrics(metrics)
        return metrics
    splits = build_eval_splits(cfg, data_root)
    metrics = run_dir.read_metrics()
    e = cfg.eval
    # Cross-validation: the recipe's own test fold is the main split already evaluated below.
    folds = [1, 2, 3, 4, 5] if e.cross_validate else []
    fold_splits = {k: build_eval_splits(_with_test_fold(cfg, k), data_root) for k in folds if k != cfg.data.test_fold}
    for name in names:
        branch = load_branch(run_dir.root, name, device)

        def probe(s: EvalSplits) -> dict[str, float]:
            return evaluate_classification(
                branch, s.train, s.val, s.num_classes, device,
                batch_size=e.batch_size, num_workers=cfg.data.num_workers, knn_k=e.knn_k,
                knn_temperature=e.knn_temperature, linear_epochs=e.linear_epochs, linear_lr=e.linear_lr,
                linear_weight_decay=e.linear_weight_decay, max_train_samples=e.max_train_samples, seed=cfg.seed,
            )

        main = probe(splits)
        metrics.update(main)
        if folds:
            runs = [main if k == cfg.data.test_fold else probe(fold_splits[k]) for k in folds]
            for metric in ("linear_top1", "knn_top1"):
                metrics[f"{name}/{metric}_cv5"] = sum(r[f"{name}/{metric}"] for r in runs) / len(runs)
    run_dir.write_metrics(metrics)
    return metrics


def _text_dir(run_dir: RunDir) -> Path:
    return run_dir.root / "text"


@torch.no_grad()
def evaluate_retrieval(
    cfg: RecipeConfig, run_dir: RunDir, names: list[str], device: torch.device, data_root: Path
) -> dict[str, float]:
    """Image-text retrieval on the test split (Karpathy test, or the official val set): the VSE++
    protocol on all images, plus the 1K protocol (``1k/`` keys) when there are 5000 images."""
    branches = {n: load_branch(run_dir.root, n, device) for n in names}
    by_modality = {b.modality: b for b in branches.values()}
    if "image" not in by_modality or "text" not in by_modality:
        raise RunDirError(f"{run_dir.root}: retrieval needs an image branch and a text branch; exported: {', '.join(names)}")
    image_branch, text_branch = by_modality["image"], by_modality["text"]
    space = cfg.eval.retrieval_space
    if space == "representation" and image_branch.representation_dim != text_branch.representation_dim:
        raise ConfigError(
            f"eval.retrieval_space=representation needs encoders of one width; {image_branch.name} gives "
            f"{image_branch.representation_dim}, {text_branch.name} {text_branch.representation_dim}: use embedding"
        )
    tokenizer = load_tokenizer(_text_dir(run_dir))
    test = read_coco(data_root, "test")
    view = image_eval_view(cfg.data.image_size)

    def embed(branch, x):
        r = branch.encode(x)
        return (branch.expander(r) if space == "embedding" else r).float().cpu()

    images = [embed(image_branch, torch.stack([view(load_rgb(p)) for p in test.image_paths[i : i + cfg.eval.batch_size]]).to(device))
              for i in range(0, len(test), cfg.eval.batch_size)]
    texts, index = test.flat()
    batches = [tokenizer.batch(texts[i : i + cfg.eval.batch_size], cfg.data.max_caption_tokens) for i in range(0, len(texts), cfg.eval.batch_size)]
    captions = [embed(text_branch, {k: v.to(device) for k, v in b.items()}) for b in batches]
    image_emb, text_emb = torch.cat(images), torch.cat(captions)
    metrics = retrieval_recall(image_emb, text_emb, index)
    if len(test) == 5000:
        metrics.update(retrieval_recall_folds(image_emb, text_emb, index, folds=5))
    return metrics


def _with_test_fold(cfg: RecipeConfig, fold: int) -> RecipeConfig:
    copy = OmegaConf.merge(cfg, {"data": {"test_fold": fold}})
    return copy  # type: ignore[return-value]


def format_metrics(metrics: dict[str, float]) -> str:
    """A small table: one row per branch, one column per metric."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        branch, _, metric = key.rpartition("/")
        rows.setdefault(branch or "both", {})[metric] = value
    columns = ["linear_top1", "linear_top5", "knn_top1", "linear_top1_cv5", "knn_top1_cv5", "std_mean", "effective_rank"]
    columns += sorted({m for r in rows.values() for m in r} - set(columns))
    columns = [c for c in columns if any(c in r for r in rows.values())]
    width = max([6] + [len(b) for b in rows])
    lines = ["branch".ljust(width) + "".join(c.rjust(16) for c in columns)]
    for branch, vals in sorted(rows.items()):
        cells = "".join((f"{vals[c]:.2f}" if c in vals else "-").rjust(16) for c in columns)
        lines.append(branch.ljust(width) + cells)
    return "\n".join(lines)
