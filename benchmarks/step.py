"""The trainer's step against a bare PyTorch loop, and a real run's time to its first step.

    nice -n 10 uv run python benchmarks/step.py                     # both models, then start-up
    nice -n 10 uv run python benchmarks/step.py --models quickstart --steps 12 --no-startup
    nice -n 10 uv run python benchmarks/step.py --no-step            # start-up only

Step: for each model, one process holds two copies of the same model (same initial weights)
and one pre-made batch. The bare loop is ``loss, _ = model(a, b); loss.backward(); opt.step();
opt.zero_grad()`` with the recipe's own optimiser (torch.optim, no Accelerate, no logging).
The trainer is :func:`multivic.train.fit` itself, on a stand-in loader that yields the same
batch (no data loading, no workers): a trainer step is the time the loop holds between taking a
batch and asking for the next one, i.e. everything it does per step (forward, loss, backward,
gradient check, optimiser, schedules, counters, logging every ``train.log_every`` steps with its
RankMe SVDs, progress bar). The two alternate step by step (bare, trainer, bare, ...) so that
the load of a shared machine falls on both alike; the first ``--warmup`` steps of each are
dropped; medians (and means, which include the logged steps) are reported.

Models: "quickstart" is recipes/quickstart/image_image.yaml as it is (ResNet-18, 32 px, expander
512-512-128, batch 128, shared weights); "paper" is the paper's shape scaled for a CPU
(ResNet-50, expander 8192-8192-8192, batch --paper-batch, --paper-size px images).

Start-up: ``multivic train`` of the quick-start in a subprocess, a fresh run directory each time,
with the built-in data set not cached (MULTIVIC_DATA_DIR = an empty temporary folder) and cached;
the subprocess times each phase from process start to the first optimiser step and the first
checkpoint written (train.checkpoint_every_steps=1, so that its I/O is measured on the first
step), then exits. Python's bytecode cache matters here: with PYTHONDONTWRITEBYTECODE=1, or on
the first run after an install without compiled bytecode, every import compiles its source;
the "imports" rows are measured both ways (--pyc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = "recipes/quickstart/image_image.yaml"


# ------------------------------------------------------------------------------------------
# The step: bare loop against multivic's trainer, interleaved in one process.


def model_overrides(name: str, args: argparse.Namespace) -> list[str]:
    if name == "quickstart":
        return []
    if name == "paper":
        return [
            "model.branch_a.encoder=resnet50",
            "model.branch_b.encoder=resnet50",
            "model.branch_a.expander=8192-8192-8192",
            "model.branch_b.expander=8192-8192-8192",
            f"train.batch_size={args.paper_batch}",
            f"data.image_size={args.paper_size}",
        ]
    raise SystemExit(f"unknown model {name!r}: quickstart or paper")


class _SameBatch:
    """Stands in for the training loader: the same batch every step, and between two trainer
    steps one bare-loop step on the twin model (timed separately)."""

    def __init__(self, batch, steps: int, bare_step, bare_times: list, trainer_times: list) -> None:
        self.batch, self.steps, self.bare_step = batch, steps, bare_step
        self.bare_times, self.trainer_times = bare_times, trainer_times
        self.steps_per_epoch = steps

    def set_epoch(self, epoch: int) -> None:
        pass

    def resume_at(self, epoch: int, steps_done: int) -> None:
        pass

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for _ in range(self.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            self.bare_step()
            self.bare_times.append((time.perf_counter() - t0, time.process_time() - c0))
            t0, c0 = time.perf_counter(), time.process_time()
            yield self.batch, []
            self.trainer_times.append((time.perf_counter() - t0, time.process_time() - c0))


def measure_step(name: str, args: argparse.Namespace) -> dict:
    import copy

    import torch
    from accelerate.utils import set_seed

    import multivic.train.loop as loop
    from multivic.build import build_data, build_model, build_optimizer_specs, build_train_settings
    from multivic.config import load_config
    from multivic.run_dir import RunDir
    from multivic.train import fit
    from multivic.train.optimizers import build_joint_optimizer

    cfg = load_config(ROOT / QUICKSTART, model_overrides(name, args))
    data = build_data(cfg)
    set_seed(cfg.seed)
    model = build_model(cfg, data)
    twin = copy.deepcopy(model)
    t = cfg.train
    size = cfg.data.image_size
    g = torch.Generator().manual_seed(0)
    batch = (
        torch.randn(t.batch_size, 3, size, size, generator=g),
        torch.randn(t.batch_size, 3, size, size, generator=g),
    )
    steps = args.warmup + args.steps

    bare_opt = build_joint_optimizer(build_optimizer_specs(cfg, twin), t.batch_size)
    parts = bare_opt.parts  # the torch.optim optimisers themselves

    def bare_step() -> None:
        twin.train()
        loss, _ = twin(*batch)
        loss.backward()
        for opt in parts:
            opt.step()
            opt.zero_grad(set_to_none=True)

    bare_times: list[tuple[float, float]] = []  # (wall, CPU) seconds per step
    trainer_times: list[tuple[float, float]] = []
    stand_in = _SameBatch(batch, steps, bare_step, bare_times, trainer_times)
    real_build_loader = loop.build_loader
    loop.build_loader = lambda *a, **k: (stand_in, stand_in)
    try:
        settings = build_train_settings(
            cfg,
            progress=False,
            epochs=1,
            grad_accum_steps=1,
            num_workers=0,
            checkpoint_every_steps=0,
            background_checkpoints=False,
            strict=False,
            max_bad_fraction=1.0,
            sync_batchnorm=False,
            cpu=True,
            trackers=(),
        )
        with tempfile.TemporaryDirectory(prefix="multivic-step-") as tmp:
            fit(
                model,
                list(range(t.batch_size * steps)),
                RunDir(Path(tmp) / "run"),
                build_optimizer_specs(cfg, model),
                settings,
            )
    finally:
        loop.build_loader = real_build_loader
    params = sum(p.numel() for p in model.parameters())
    out = {
        "model": name,
        "batch": t.batch_size,
        "size": size,
        "params": params,
        "log_every": t.log_every,
        "steps": len(bare_times) - args.warmup,
    }
    for kind, times in (("bare", bare_times), ("multivic", trainer_times)):
        for i, clock in enumerate(("ms", "cpu_ms")):
            kept = [x[i] for x in times[args.warmup :]]
            out[f"{kind}_{clock}"] = 1e3 * statistics.median(kept)
            out[f"{kind}_mean_{clock}"] = 1e3 * statistics.mean(kept)
    return out


# ------------------------------------------------------------------------------------------
# Start-up: a real `multivic train` in a subprocess, timed phase by phase.

PHASES = [
    # (label, event that ends it)
    ("interpreter start", "interpreter"),
    ("imports (torch, accelerate, multivic's CLI and trainer)", "imports"),
    ("config (recipe, registry: the image modality imports torchvision)", "config"),
    ("data build (built-in data set: generated when not cached)", "data"),
    ("model build", "model"),
    ("trainer set-up (Accelerator, loader, optimiser, prepare, resume check)", "loop ready"),
    ("loader/worker start", "workers started"),
    ("first batch", "first batch"),
    ("first step (forward, loss, backward, optimiser)", "first step"),
    ("checkpoint I/O (first checkpoint written)", "checkpoint"),
]


def child(t0: float, out: str, events_file: str, recipe: str, overrides: list[str]) -> None:
    """Run `multivic train` in this process with timestamps (seconds since ``t0``, the parent's
    clock just before it started this process), write them to ``events_file`` after the first
    checkpoint and exit."""
    events: dict[str, float] = {}

    def mark(name: str) -> None:
        events.setdefault(name, time.time() - t0)

    mark("interpreter")
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.utils.data import DataLoader

    import multivic.cli as cli
    import multivic.commands.train as command
    import multivic.config as config
    import multivic.train.loop as loop

    mark("imports")

    def after(module, name: str, event: str) -> None:
        inner = getattr(module, name)

        def wrapped(*a, **k):
            result = inner(*a, **k)
            mark(event)
            return result

        setattr(module, name, wrapped)

    after(config, "load_config", "config")
    after(command, "fit_modalities", "data")
    after(command, "build_model", "model")
    after(loop, "StepLogger", "loop ready")
    get_iterator = DataLoader._get_iterator

    def timed_get_iterator(self):
        mark("loop ready")
        result = get_iterator(self)
        mark("workers started")
        return result

    DataLoader._get_iterator = timed_get_iterator
    forward = loop._forward

    def timed_forward(*a, **k):
        mark("workers started")  # no workers
        mark("first batch")
        return forward(*a, **k)

    loop._forward = timed_forward
    register_optimizer_step_post_hook(lambda *a: mark("first step"))
    save = loop.save_checkpoint

    def timed_save(*a, **k):
        save(*a, **k)
        mark("checkpoint")
        Path(events_file).write_text(json.dumps(events))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # the measurement is done; workers notice their parent is gone

    loop.save_checkpoint = timed_save
    del torch
    # Inline checkpoint writes: the phase times the first checkpoint's I/O, not its hand-off to a thread.
    sys.argv = [
        "multivic",
        "train",
        recipe,
        "--output-dir",
        out,
        "--no-progress",
        "train.checkpoint_every_steps=1",
        "train.background_checkpoints=false",
        "eval.enabled=false",
        *overrides,
    ]
    cli.main()
    raise SystemExit("the run ended before its first checkpoint")


def startup(recipe: str, data_dir: Path, pyc: str, overrides: list[str]) -> dict[str, float]:
    env = dict(os.environ, MULTIVIC_DATA_DIR=str(data_dir))
    if pyc == "none":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env.pop("PYTHONPYCACHEPREFIX", None)
    else:  # a bytecode cache of our own (the environment may forbid writing one beside the sources)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = pyc
    with tempfile.TemporaryDirectory(prefix="multivic-startup-") as tmp:
        events = Path(tmp) / "events.json"
        t0 = time.time()
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(t0),
                str(Path(tmp) / "run"),
                str(events),
                str(ROOT / recipe),
                *overrides,
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not events.exists():
            raise SystemExit(f"the start-up run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return json.loads(events.read_text())


def startup_table(columns: dict[str, dict[str, float]]) -> list[str]:
    names = list(columns)
    lines = ["| phase | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    previous = {n: 0.0 for n in names}
    for label, event in PHASES:
        cells = []
        for n in names:
            at = columns[n].get(event, previous[n])
            cells.append(f"{at - previous[n]:.2f}")
            previous[n] = at
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| **time to first step** (process start → first optimiser step done) | "
        + " | ".join(f"**{columns[n]['first step']:.1f}**" for n in names)
        + " |"
    )
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="quickstart,paper")
    p.add_argument("--steps", type=int, default=10, help="measured steps per loop and model")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--paper-batch", type=int, default=32)
    p.add_argument("--paper-size", type=int, default=32, help="image size of the paper-shaped model (px)")
    p.add_argument("--threads", type=int, default=0, help="torch threads for the step comparison (0: torch's default)")
    p.add_argument("--no-step", action="store_true")
    p.add_argument("--no-startup", action="store_true")
    p.add_argument(
        "--pyc",
        default="both",
        choices=["both", "none", "cached"],
        help="start-up with no bytecode cache (compile every import), a warm one, or both",
    )
    args = p.parse_args()
    print(f"load before: {os.getloadavg()[0]:.1f} (1-min average, {os.cpu_count()} cores)\n")
    if not args.no_step:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        print(
            f"step: {torch.get_num_threads()} torch threads; medians over the steps after {args.warmup} warm-up "
            "steps; CPU = process time (all threads)\n"
        )
        print(
            "| model | params | batch | bare ms/step | multivic ms/step | ratio | bare CPU ms | multivic CPU ms | "
            "CPU ratio | means bare / multivic (incl. logged steps) |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for name in args.models.split(","):
            r = measure_step(name, args)
            label = (
                "ResNet-18 32 px, 512-512-128 (quick-start)"
                if name == "quickstart"
                else f"ResNet-50 {r['size']} px, 8192-8192-8192 (paper-shaped)"
            )
            print(
                f"| {label} | {r['params'] / 1e6:.1f} M | {r['batch']} | {r['bare_ms']:.0f} | {r['multivic_ms']:.0f} | "
                f"{r['multivic_ms'] / r['bare_ms']:.3f} | {r['bare_cpu_ms']:.0f} | {r['multivic_cpu_ms']:.0f} | "
                f"{r['multivic_cpu_ms'] / r['bare_cpu_ms']:.3f} | {r['bare_mean_ms']:.0f} / "
                f"{r['multivic_mean_ms']:.0f} ms "
                f"({r['steps']} steps, log every {r['log_every']}) |",
                flush=True,
            )
        print()
    if not args.no_startup:
        columns: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory(prefix="multivic-data-") as data_tmp:
            data_dir, pyc = Path(data_tmp) / "data", str(Path(data_tmp) / "pyc")
            modes = {"both": ["none", "cached"], "none": ["none"], "cached": ["cached"]}[args.pyc]
            if "cached" in modes:  # fill the bytecode cache (and nothing else: its own data folder)
                startup(QUICKSTART, Path(data_tmp) / "warm", pyc, [])
            for mode in modes:
                pyc_arg = "none" if mode == "none" else pyc
                what = "no .pyc" if mode == "none" else ".pyc cached"
                shutil_rm(data_dir)
                columns[f"data not cached, {what}"] = startup(QUICKSTART, data_dir, pyc_arg, [])
                columns[f"data cached, {what}"] = startup(QUICKSTART, data_dir, pyc_arg, [])
        print(f"`multivic train {QUICKSTART}` (seconds per phase):\n")
        print("\n".join(startup_table(columns)))
    print(f"\nload after: {os.getloadavg()[0]:.1f}")


def shutil_rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
