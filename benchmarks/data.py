"""Training-loader throughput: samples/s from tar shards against the same data as a folder.

    uv run python benchmarks/data.py                       # the shapes and captions quick-starts, 2 workers
    uv run python benchmarks/data.py --sets captions --workers 4 --epochs 5
    uv run python benchmarks/data.py --vs-step                 # each quick-start's pipeline against its step

Each row runs the trainer's own loader (multivic.data.loader: the map-style EpochBatches loader
for the folder, the streaming loader for the shards) over one quick-start recipe's training split
with that recipe's views and collate (decode, augment, tokenise), with the same number of
workers and the same per-process batch, and no model: what one training process can be fed.
The shards are written once with `multivic shard` (into --shard-dir, default a temporary
folder). samples/s is all samples of --epochs epochs over their wall time, worker start-up
included (the folder loader's workers persist across epochs; the stream's start every epoch).

--vs-step: for each quick-start (image views of image_image.yaml; audio read, resample, crop and
augment of wave_spec.yaml; image views and caption tokenising of coco_retrieval.yaml), the
samples/s its folder loader delivers with the recipe's data.num_workers, against the samples/s
its training step consumes: the median of --step-steps steps (forward, loss, backward,
optimiser; benchmarks/step.py compares the trainer's step with this bare loop) of the recipe's
model on a real batch of the recipe. A ratio above 1 means the pipeline outpaces the step. Both
are measured alone; where the workers share the cores with the step (2 cores), preparing a
batch costs the step about 1/ratio of its time on top, so a ratio of 5 means ~20 % slower steps
even though the loader is never waited for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from multivic.build import build_collate, build_data, build_train_dataset, fit_modalities  # noqa: E402
from multivic.commands.shard import write_shards  # noqa: E402
from multivic.config import load_config  # noqa: E402
from multivic.data.loader import build_loader, build_stream_loader, stop_workers, streaming_split  # noqa: E402

RECIPES = {
    "shapes": "recipes/quickstart/image_image.yaml",
    "captions": "recipes/quickstart/coco_retrieval.yaml",
    "sounds": "recipes/quickstart/wave_spec.yaml",
}
WHAT = {
    "shapes": "image views (crop, flip, jitter, blur, solarise)",
    "sounds": "audio read, resample, crop, gain/noise/shift",
    "captions": "image views + caption tokenise",
}
ROOT = Path(__file__).resolve().parents[1]


def loader_for(recipe: str, overrides: list[str], workers: int, state: Path):
    cfg = load_config(ROOT / recipe, overrides + [f"data.num_workers={workers}"])
    data = build_data(cfg)
    fit_modalities(cfg, data, lambda m: state / m)
    train_set = build_train_dataset(cfg, data)
    collate = build_collate(cfg, data)
    batch = cfg.train.batch_size
    stream = streaming_split(train_set)
    if stream is None:
        loader, sampler = build_loader(train_set, batch, 1, cfg.seed, workers, False, collate)
    else:
        loader, sampler = build_stream_loader(
            *stream, batch, 1, cfg.seed, workers, False, 0, 1, torch.device("cpu"), collate
        )
    return loader, sampler, batch


def throughput(loader, sampler, epochs: int) -> tuple[float, list[float]]:
    samples, per_epoch = 0, []
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        t0, n = time.perf_counter(), 0
        for batch, faults in loader:
            n += batch[0].shape[0] if isinstance(batch[0], torch.Tensor) else len(batch[0])
        per_epoch.append(n / (time.perf_counter() - t0))
        samples += n
    total = samples / (time.perf_counter() - start)
    stop_workers(loader)
    return total, per_epoch


def step_rate(recipe: str, loader, steps: int, state: Path) -> tuple[float, float]:
    """Median ms per training step of the recipe's model on one real batch of its loader, and
    the samples/s that makes."""
    from accelerate.utils import set_seed

    from multivic.build import build_model, build_optimizer_specs
    from multivic.train.optimizers import build_joint_optimizer

    cfg = load_config(ROOT / recipe, [])
    data = build_data(cfg)
    fit_modalities(cfg, data, lambda m: state / m)
    set_seed(cfg.seed)
    model = build_model(cfg, data)
    parts = build_joint_optimizer(build_optimizer_specs(cfg, model), cfg.train.batch_size).parts
    batch, _ = next(iter(loader))
    stop_workers(loader)
    times = []
    model.train()
    for _ in range(steps + 1):  # the first one warms up
        t0 = time.perf_counter()
        loss, _ = model(*batch)
        loss.backward()
        for opt in parts:
            opt.step()
            opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    ms = 1e3 * statistics.median(times[1:])
    return ms, cfg.train.batch_size / (ms / 1e3)


def vs_step(args: argparse.Namespace) -> None:
    base = Path(args.shard_dir or tempfile.mkdtemp(prefix="multivic-bench-"))
    print(
        "| quick-start | input pipeline | workers | batch | pipeline samples/s | step ms | step samples/s | "
        "pipeline / step |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in args.sets.split(","):
        recipe = RECIPES[name]
        workers = load_config(ROOT / recipe, []).data.num_workers
        loader, sampler, batch = loader_for(recipe, [], workers, base / f"{name}-state")
        total, _ = throughput(loader, sampler, args.epochs)
        loader, sampler, batch = loader_for(recipe, [], 0, base / f"{name}-state")
        sampler.set_epoch(0)
        ms, consumed = step_rate(recipe, loader, args.step_steps, base / f"{name}-state")
        print(
            f"| {Path(recipe).name} | {WHAT[name]} | {workers} | {batch} | {total:.0f} | {ms:.0f} | {consumed:.0f} | "
            f"{total / consumed:.1f} |",
            flush=True,
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="shapes,captions")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--shard-size", default="100", help="samples per shard (as multivic shard --shard-size)")
    p.add_argument("--shard-dir", default=None)
    p.add_argument("--vs-step", action="store_true", help="each quick-start's pipeline against its training step")
    p.add_argument("--step-steps", type=int, default=4, help="timed training steps per quick-start (--vs-step)")
    args = p.parse_args()
    if args.vs_step:
        if args.sets == p.get_default("sets"):
            args.sets = "shapes,sounds,captions"
        print(f"load: {os.getloadavg()[0]:.1f} (1-min average, {os.cpu_count()} cores)\n")
        vs_step(args)
        return
    torch.set_num_threads(1)
    base = Path(args.shard_dir or tempfile.mkdtemp(prefix="multivic-bench-"))
    print(
        f"| data set | source | workers | batch | samples/s (all {args.epochs} epochs) | per epoch | shards / folder |"
    )
    print("|---|---|---:|---:|---:|---|---:|")
    for name in args.sets.split(","):
        shards = base / f"{name}-shards"
        if not shards.exists():
            write_shards(name, shards, shard_size=args.shard_size)
        rows = [("folder", []), ("shards", ["data.format=webdataset", f"data.root={shards}", "data.builtin=null"])]
        rates = {}
        for source, overrides in rows:
            loader, sampler, batch = loader_for(RECIPES[name], overrides, args.workers, base / f"{name}-state")
            total, per_epoch = throughput(loader, sampler, args.epochs)
            rates[source] = total
            ratio = f"{rates['shards'] / rates['folder']:.2f}" if source == "shards" else ""
            print(
                f"| {name} | {source} | {args.workers} | {batch} | {total:.0f} | "
                f"{', '.join(f'{r:.0f}' for r in per_epoch)} | {ratio} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
