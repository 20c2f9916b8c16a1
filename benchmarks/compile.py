"""What model.compile=true costs and gains on the image quick-start model (issue 15).

    uv run python benchmarks/compile.py                 # CUDA when present, else CPU
    uv run python benchmarks/compile.py --steps 10 --device cpu

The model is recipes/quickstart/image_image.yaml's (ResNet-18 on 32 px images, expander
512-512-128, shared by both views, VICReg, batch 128), built by multivic.build.build_model with
model.compile=false and =true; a step is forward + backward + AdamW on random images. Each
variant runs in a fresh child process with an empty inductor cache (TORCHINDUCTOR_CACHE_DIR), so
the first step pays the whole cold compile (forward and backward graphs, C++/Triton kernels) as
a first run on a new machine does; later runs of the same recipe hit the cache and start faster.
Steady state: the median of --steps steps after the first two.
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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RECIPE = ROOT / "recipes" / "quickstart" / "image_image.yaml"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _child(compile_: bool, steps: int, device: str) -> None:
    from multivic.build import build_data, build_model
    from multivic.config import load_config

    cfg = load_config(RECIPE, [f"model.compile={str(compile_).lower()}"])
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as empty:  # the data set is not read: random images
        model = build_model(cfg, build_data(cfg, root=Path(empty))).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    n, size = cfg.train.batch_size, cfg.data.image_size
    views = [torch.randn(n, 3, size, size, device=device) for _ in range(2)]
    times = []
    for _ in range(steps + 2):
        _sync(device)
        t0 = time.perf_counter()
        loss, _ = model(*views)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"first": times[0], "steady": statistics.median(times[2:]), "loss": float(loss)}))


def run_variant(compile_: bool, steps: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "TRITON_CACHE_DIR": os.path.join(cache, "triton")}
        cmd = [sys.executable, __file__, "--child", str(int(compile_)), str(steps), device]
        start = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(f"the {'compiled' if compile_ else 'eager'} run failed:\n{out.stderr[-3000:]}")
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        rec["process"] = time.perf_counter() - start
        return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10, help="steady-state steps timed after the first two")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(bool(int(args.child[0])), int(args.child[1]), args.child[2])
        return
    print(
        f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} CPU threads; image quick-start model, "
        f"batch 128, 32 px; forward+backward+AdamW; steady state = median of {args.steps} steps after the first two\n"
    )
    eager, compiled = run_variant(False, args.steps, args.device), run_variant(True, args.steps, args.device)
    print("| model.compile | first step s | steady step ms | whole process s |")
    print("|---|---:|---:|---:|")
    for name, r in (("false", eager), ("true", compiled)):
        print(f"| {name} | {r['first']:.1f} | {r['steady'] * 1e3:.0f} | {r['process']:.0f} |")
    print(
        f"\ncompile time (first step, compiled minus eager): {compiled['first'] - eager['first']:.1f} s; "
        f"steady-state step time compiled / eager: {compiled['steady'] / eager['steady']:.2f} "
        f"(losses after the last step: {eager['loss']:.4f} eager, {compiled['loss']:.4f} compiled)"
    )


if __name__ == "__main__":
    main()
