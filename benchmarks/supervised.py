"""The supervised reference of a quick-start: its encoders trained with labels, scored by its own protocol.

    uv run python benchmarks/supervised.py recipes/quickstart/image_image.yaml --seconds 240
    uv run python benchmarks/supervised.py recipes/quickstart/wave_spec.yaml --seconds 240 data.builtin=NAME

For each distinct branch of the recipe (one when the weights are shared), the branch's encoder
and a linear classifier on its representation are trained with cross-entropy on the labelled
training split, with the branch's own training view (one view per sample), the recipe's batch
size, optimiser family, peak learning rate and weight decay, and a linear warm-up (the recipe's
warm-up epochs) then cosine schedule. The budget is wall time (``--seconds``, the time the
self-supervised run trained for): the first epoch is timed and the run gets as many epochs as
fit the budget. Then the classifier is thrown away and the encoder is scored exactly as a
self-supervised run is (``multivic.evaluation.protocols``: frozen-feature linear probe and k-NN
on the recipe's val split, the recipe's ``eval`` settings). Random init (``--epochs 0``) is
the floor; this is the ceiling a self-supervised run on the same data and time is measured
against: "gap closed" = (SSL − random) / (supervised − random).

Prints one Markdown row per branch: epochs, seconds, linear and k-NN top-1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from multivic.branch import Branch  # noqa: E402
from multivic.build import (  # noqa: E402
    build_data,
    build_eval_settings,  # noqa: E402
    build_model,
    fit_modalities,
    plain,
)
from multivic.config import load_config  # noqa: E402
from multivic.data.formats import LabelledViews  # noqa: E402
from multivic.evaluation.embed import LabelledCollate  # noqa: E402
from multivic.evaluation.protocols import PROTOCOLS  # noqa: E402
from multivic.optim import split_decay_groups, warmup_cosine  # noqa: E402


class Classifier(nn.Module):
    """The branch's encoder and a linear head: inputs -> representation [B, D] -> logits [B, C]."""

    def __init__(self, branch: Branch, num_classes: int) -> None:
        super().__init__()
        self.branch = branch
        self.head = nn.Linear(branch.representation_dim, num_classes)

    def forward(self, x) -> torch.Tensor:
        return self.head(self.branch.encode(x))


def train_supervised(
    branch: Branch,
    train: LabelledViews,
    num_classes: int,
    *,
    batch_size: int,
    num_workers: int,
    base_lr: float,
    weight_decay: float,
    optimiser: str,
    warmup_epochs: float,
    seconds: float | None,
    epochs: int | None,
    seed: int,
    collate=None,
) -> tuple[int, float]:
    """Train ``branch.encoder`` and a linear head on ``train`` with cross-entropy; returns (epochs, seconds).

    Inputs are the branch's training views of each sample; the head reads the encoder's
    representation [B, D] and gives logits [B, num_classes]. Either ``epochs`` is fixed, or
    ``seconds`` is the budget: epoch 1 is timed and fixes the schedule's length."""
    torch.manual_seed(seed)
    model = Classifier(branch, num_classes).train()
    lr = base_lr * batch_size / 256  # the recipes' rule: base_lr is per 256 samples
    groups = split_decay_groups(model, weight_decay)
    for g in groups:
        g.pop("lars_adapt", None)
    opt = torch.optim.AdamW(groups, lr=lr) if optimiser == "adamw" else torch.optim.SGD(groups, lr=lr, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        train,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        collate_fn=LabelledCollate(collate),
        generator=generator,
    )
    steps_per_epoch = len(loader)
    total_epochs = epochs if epochs is not None else 1  # fixed after the first epoch under a time budget
    start, step, epoch = time.perf_counter(), 0, 0
    while epoch < total_epochs:
        for x, y in loader:
            scale = warmup_cosine(
                step,
                total_steps=steps_per_epoch * total_epochs,
                warmup_steps=int(round(warmup_epochs * steps_per_epoch)),
                final_ratio=0.001,
            )
            for g in opt.param_groups:
                g["lr"] = lr * scale
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        epoch += 1
        if epochs is None and epoch == 1:
            first = time.perf_counter() - start
            total_epochs = max(1, math.floor(seconds / first))
    return epoch, time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe")
    p.add_argument("--seconds", type=float, default=None, help="wall-time budget of the training (the SSL run's)")
    p.add_argument("--epochs", type=int, default=None, help="a fixed number of epochs instead (0: random init)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--json", default=None, help="also write the rows as JSON here")
    p.add_argument("--branch", default=None, help="only this branch (by name), e.g. vit")
    p.add_argument("overrides", nargs="*", help="recipe overrides, e.g. data.builtin=glyphs")
    args = p.parse_intermixed_args()
    if (args.seconds is None) == (args.epochs is None):
        p.error("give exactly one of --seconds and --epochs")
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = load_config(args.recipe, [*args.overrides, f"seed={seed}"])
        torch.manual_seed(seed)
        data = build_data(cfg)
        fit_modalities(cfg, data, lambda m: Path("/nonexistent"))
        model = build_model(cfg, data)
        settings = build_eval_settings(cfg)
        train_split = data.format.split("train", data.modalities)
        sides = [("model.branch_a", cfg.model.branch_a, model.branch_a)]
        if not model.shared:
            sides.append(("model.branch_b", cfg.model.branch_b, model.branch_b))
        if args.branch is not None:
            known = [b.name for _, _, b in sides]
            if args.branch not in known:
                p.error(f"--branch {args.branch!r} is not a branch of {args.recipe}; its branches: {', '.join(known)}")
            sides = [side for side in sides if side[2].name == args.branch]
        for key, bcfg, branch in sides:
            modality = branch.preprocess
            view = modality.train_view(**(plain(bcfg.view) or {}))
            labelled = LabelledViews(train_split, branch.modality, view)
            o = bcfg.optim if bcfg.optim is not None else cfg.optim
            epochs, seconds = 0, 0.0
            if args.epochs != 0:
                epochs, seconds = train_supervised(
                    branch,
                    labelled,
                    len(labelled.classes),
                    batch_size=cfg.train.batch_size,
                    num_workers=cfg.data.num_workers,
                    base_lr=o.base_lr,
                    weight_decay=o.weight_decay,
                    optimiser=o.name,
                    warmup_epochs=o.warmup_epochs,
                    seconds=args.seconds,
                    epochs=args.epochs,
                    seed=seed,
                    collate=modality.collate(),
                )
            branch.eval()
            metrics = PROTOCOLS["classification"](data, {branch.name: branch}, torch.device("cpu"), settings).metrics
            row = {
                "recipe": args.recipe,
                "overrides": " ".join(args.overrides),
                "seed": seed,
                "branch": branch.name,
                "epochs": epochs,
                "seconds": round(seconds, 1),
                "linear_top1": metrics[f"{branch.name}/linear_top1"],
                "knn_top1": metrics[f"{branch.name}/knn_top1"],
            }
            rows.append(row)
            print(
                f"| {row['recipe']} {row['overrides']} | {seed} | {row['branch']} | {epochs} | {row['seconds']} | "
                f"{row['linear_top1']:.1f} | {row['knn_top1']:.1f} |",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
