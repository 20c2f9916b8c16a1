"""multivic against a bare lightly 1.6 loop: the same data, encoder, expander, views, optimiser,
batch and epochs, scored by the same evaluation code.

    uv sync --group peers                                   # lightly, only for this script
    uv run python benchmarks/peers.py --seeds 0,1,2         # the image quick-start row, 3 seeds
    uv run python benchmarks/peers.py --rows paper          # the paper-shaped row (speed only)
    uv run python benchmarks/peers.py --rows step           # the step alone, the two alternating

Rows:
- ``quickstart``: recipes/quickstart/image_image.yaml as it is (ResNet-18 at 32 px, expander
  512-512-128, batch 128, AdamW, its epochs). multivic runs it with ``multivic train`` in a
  subprocess, as a user would; lightly runs a loop written as lightly's VICReg example writes
  it: a torchvision ResNet-18 trunk as ``nn.Sequential(*children[:-1])``,
  ``VICRegProjectionHead`` and ``VICRegLoss`` (λ = μ = 25, ν = 1, as multivic), iterating a
  plain DataLoader. Both read the same training split through the same views (multivic's
  image views of the recipe, so augmentations are equal), with the recipe's workers, batch,
  AdamW (decay on weights only, as multivic and the released code), peak lr and warm-up +
  cosine schedule. Both encoders are then scored by
  :func:`multivic.commands.evaluate_backbone.evaluate_backbone` on the recipe's val split:
  the same code, probe and seeds for each.
- ``paper``: the same with the paper's expander 8192-8192-8192 at batch ``--paper-batch`` for
  ``--paper-steps`` steps: where lightly's d×d covariance reaches the step. Speed only.
- ``step``: the training step alone, without data loading or anything around it, on one batch
  of the recipe's views: lightly's model, ``VICRegLoss`` and AdamW (as the loop above) against
  multivic's model and optimiser as the recipe builds them, the two alternating step by step
  in one process (``--step-steps`` each) so that a shared machine's load falls on both alike;
  medians. Where whole-epoch samples/s differ by less than the seeds' spread, this says whether
  the step itself does.

samples/s: the median over windows of ``train.log_every`` steps (multivic's history.csv; the
same windows in the lightly loop), data loading included, the first window left out (worker
start-up; see benchmarks/step.py for time-to-first-step). Prints a Markdown table; ``--json``
keeps every row.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, default_collate  # noqa: E402

from multivic.build import build_collate, build_data, build_model, build_optimizer_specs, build_train_dataset  # noqa: E402
from multivic.commands.evaluate_backbone import evaluate_backbone  # noqa: E402
from multivic.config import load_config  # noqa: E402
from multivic.optim import build_optimizer, split_decay_groups, warmup_cosine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "quickstart" / "image_image.yaml"

try:
    from lightly.loss import VICRegLoss
    from lightly.models.modules.heads import VICRegProjectionHead
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("benchmarks/peers.py needs lightly: uv sync --group peers")


def expander_dims(spec: str) -> tuple[int, int, int]:
    """(hidden, output, layers) of a multivic expander spec such as "512-512-128"."""
    widths = [int(w) for w in spec.split("-")]
    if len(set(widths[:-1])) > 1:
        raise SystemExit(f"VICRegProjectionHead has one hidden width; {spec} has several")
    return widths[0], widths[-1], len(widths)


class LightlyVICReg(nn.Module):
    """lightly's documented VICReg model: a ResNet-18 trunk and VICRegProjectionHead."""

    def __init__(self, expander: str) -> None:
        super().__init__()
        # zero_init_residual as multivic's encoder (and the released code) build it.
        resnet = torchvision.models.resnet18(weights=None, zero_init_residual=True)
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        hidden, out, layers = expander_dims(expander)
        self.projection_head = VICRegProjectionHead(input_dim=512, hidden_dim=hidden, output_dim=out, num_layers=layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x).flatten(start_dim=1))


def lightly_adamw(model: nn.Module, weight_decay: float, lr: float) -> torch.optim.AdamW:
    """The lightly loop's optimiser: PyTorch's AdamW with its defaults, decay on weights only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


def run_lightly(
    overrides: list[str], seed: int, max_steps: int | None
) -> tuple[dict[str, torch.Tensor], list[float], float]:
    """Train the lightly loop; returns (backbone state dict, samples/s per window, wall seconds)."""
    cfg = load_config(RECIPE, [*overrides, f"seed={seed}"])
    torch.manual_seed(seed)
    data = build_data(cfg)
    train = build_train_dataset(cfg, data)
    batch, workers = cfg.train.batch_size, cfg.data.num_workers
    loader = DataLoader(
        train,
        batch_size=batch,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        collate_fn=build_collate(cfg, data),
        generator=torch.Generator().manual_seed(seed),
    )
    model = LightlyVICReg(cfg.model.branch_a.expander)
    criterion = VICRegLoss()
    optimizer = lightly_adamw(model, cfg.optim.weight_decay, cfg.optim.base_lr * batch / 256)
    steps_per_epoch = len(loader)
    total = steps_per_epoch * cfg.train.epochs
    # The schedule's formula is multivic's (the same lr at every step); the loop steps it itself.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        functools.partial(
            warmup_cosine,
            total_steps=total,
            warmup_steps=int(round(cfg.optim.warmup_epochs * steps_per_epoch)),
            final_ratio=cfg.optim.final_lr_ratio,
        ),
    )
    rates, step, window_start = [], 0, time.perf_counter()
    start = window_start
    model.train()
    for epoch in range(cfg.train.epochs):
        for x0, x1 in loader:
            z0, z1 = model(x0), model(x1)
            loss = criterion(z0, z1)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            schedule.step()
            step += 1
            if step % cfg.train.log_every == 0:
                loss.item()  # as any loop that logs its loss
                now = time.perf_counter()
                rates.append(cfg.train.log_every * batch / (now - window_start))
                window_start = now
            if max_steps is not None and step >= max_steps:
                break
        if max_steps is not None and step >= max_steps:
            break
    wall = time.perf_counter() - start
    del loader
    return model.backbone.state_dict(), rates, wall


def run_multivic(overrides: list[str], seed: int, out: Path) -> tuple[Path, list[float], float]:
    """``multivic train`` in a subprocess; returns (exported encoder file, samples/s per window, wall
    seconds of the process, its end-of-run evaluation and report included)."""
    cmd = [
        sys.executable,
        "-m",
        "multivic",
        "train",
        str(RECIPE),
        "--output-dir",
        str(out),
        "--no-progress",
        *overrides,
        f"seed={seed}",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    history = pd.read_csv(out / "history.csv")
    return out / "export" / "resnet18.safetensors", list(history["samples_per_s"]), wall


def compare_steps(overrides: list[str], steps: int) -> dict[str, float]:
    """Median ms of a training step of each toolkit's model, alternating on one batch."""
    cfg = load_config(RECIPE, overrides)
    data = build_data(cfg)
    train = build_train_dataset(cfg, data)
    view_a, view_b = (build_collate(cfg, data) or default_collate)([train[i] for i in range(cfg.train.batch_size)])
    torch.manual_seed(cfg.seed)
    ours = build_model(cfg, data).train()
    (spec,) = build_optimizer_specs(cfg, ours)
    ours_opt = build_optimizer(
        spec.name, split_decay_groups(ours, spec.weight_decay), spec.base_lr, spec.momentum, spec.betas
    )
    theirs = LightlyVICReg(cfg.model.branch_a.expander).train()
    criterion = VICRegLoss()
    theirs_opt = lightly_adamw(theirs, cfg.optim.weight_decay, spec.base_lr)

    def lightly_step() -> None:
        criterion(theirs(view_a), theirs(view_b)).backward()
        theirs_opt.step()
        theirs_opt.zero_grad()

    def multivic_step() -> None:
        loss, _ = ours(view_a, view_b)
        loss.backward()
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)

    times: dict[str, list[float]] = {"lightly 1.6": [], "multivic": []}
    pair = [("lightly 1.6", lightly_step), ("multivic", multivic_step)]
    for i in range(steps + 2):  # the first two of each are warm-up
        for name, step in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t[2:]) for name, t in times.items()}


def steady(rates: list[float]) -> float:
    """Median samples/s without the first window (worker start-up, first-iteration kernels)."""
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="quickstart", help="quickstart, paper, step, or several (comma-separated)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--paper-batch", type=int, default=256)
    p.add_argument("--paper-steps", type=int, default=8)
    p.add_argument("--step-steps", type=int, default=40, help="steps of each toolkit in the step row")
    p.add_argument("--out", default=None, help="folder of the multivic runs (default: a temporary one)")
    p.add_argument("--json", default=None)
    p.add_argument("overrides", nargs="*", help="recipe overrides for both toolkits, e.g. train.epochs=1 (a smoke run)")
    args = p.parse_intermixed_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="multivic-peers-"))
    rows = []
    print("| row | seed | toolkit | samples/s | linear top-1 | k-NN top-1 |")
    print("|---|---|---|---:|---:|---:|")
    for row in args.rows.split(","):
        if row == "step":
            ms = compare_steps(list(args.overrides), args.step_steps)
            for toolkit, t in ms.items():
                rows.append({"row": row, "seed": 0, "toolkit": toolkit, "step_ms": t})
                print(f"| step | - | {toolkit} | {t:.0f} ms a step | - | - |", flush=True)
            print(
                f"step: lightly / multivic step time = {ms['lightly 1.6'] / ms['multivic']:.2f}x (above 1: multivic "
                "faster)"
            )
            continue
        if row == "quickstart":
            overrides, max_steps = list(args.overrides), None
        elif row == "paper":
            b = args.paper_batch
            overrides = [
                "model.branch_a.expander=8192-8192-8192",
                "model.branch_b.expander=8192-8192-8192",
                f"train.batch_size={b}",
                "train.epochs=1",
                "train.log_every=1",
                "eval.linear_epochs=1",
                *args.overrides,
            ]
            max_steps = args.paper_steps
        else:
            raise SystemExit(f"unknown row {row!r}: quickstart, paper or step")
        for seed in [int(s) for s in args.seeds.split(",")]:
            eval_cfg = load_config(RECIPE, [*overrides, f"seed={seed}"])
            results = {}
            state, rates, wall = run_lightly(overrides, seed, max_steps)
            results["lightly 1.6"] = (state, rates, wall)
            export, rates, wall = run_multivic(overrides, seed, out / f"{row}-seed{seed}")
            if row == "paper":  # same steps as the lightly loop: the windows of its steps
                rates = rates[:max_steps]
            results["multivic"] = (export, rates, wall)
            for toolkit, (weights, rates, wall) in results.items():
                r = {"row": row, "seed": seed, "toolkit": toolkit, "samples_per_s": steady(rates), "wall_s": wall}
                if row == "quickstart":
                    m = evaluate_backbone(eval_cfg, "resnet18", weights, name="resnet18")
                    r.update(linear_top1=m["resnet18/linear_top1"], knn_top1=m["resnet18/knn_top1"])
                rows.append(r)
                acc = f"{r['linear_top1']:.1f} | {r['knn_top1']:.1f}" if "linear_top1" in r else "- | -"
                print(f"| {row} | {seed} | {toolkit} | {r['samples_per_s']:.0f} | {acc} |", flush=True)
    df = pd.DataFrame(rows)
    summary = df.groupby(["row", "toolkit"]).agg(["mean", "std", "count"]).drop(columns="seed", errors="ignore")
    print("\n" + summary.to_string())
    for row in df["row"].unique():
        if row == "step":  # printed above
            continue
        d = df[df["row"] == row].groupby("toolkit")["samples_per_s"].mean()
        if {"multivic", "lightly 1.6"} <= set(d.index):
            print(f"{row}: multivic / lightly samples/s = {d['multivic'] / d['lightly 1.6']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
