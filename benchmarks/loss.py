"""Forward+backward time and peak memory of multivic's VICRegLoss against the released code's
d×d arrangement of the same formula, and against the floor (the Gram products alone).

    uv run python benchmarks/loss.py                 # CPU, and CUDA when present
    uv run python benchmarks/loss.py --shapes 256x8192 --repeats 5

Every number in a row comes from the same process; times are medians of repeated runs after a
warm-up. Peak memory is measured in a fresh child process per variant (max RSS above a
baseline that holds only the inputs, from /proc on Linux) on CPU, and with torch.cuda.max_memory_allocated on GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from multivic.objectives import VICRegLoss  # noqa: E402


def released_dxd_loss(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    """The released code's arrangement: explicit d×d covariance matrices, autograd backward."""
    n, d = z_a.shape
    repr_loss = F.mse_loss(z_a, z_b)
    x = z_a - z_a.mean(dim=0)
    y = z_b - z_b.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + 1e-4)
    std_y = torch.sqrt(y.var(dim=0) + 1e-4)
    std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
    cov_x = (x.T @ x) / (n - 1)
    cov_y = (y.T @ y) / (n - 1)
    off = ~torch.eye(d, dtype=torch.bool, device=z_a.device)
    cov_loss = cov_x[off].pow(2).sum() / d + cov_y[off].pow(2).sum() / d
    return 25.0 * repr_loss + 25.0 * std_loss + cov_loss


_ours = VICRegLoss(check_finite=False)


def multivic_loss(z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
    return _ours(z_a, z_b).loss


def gram_floor(z_a: torch.Tensor, z_b: torch.Tensor) -> None:
    """The products no exact method avoids: per branch, the smaller Gram and one product with it
    for the gradient (n²d each when n < d)."""
    for z in (z_a, z_b):
        zc = z.detach() - z.detach().mean(dim=0)
        if z.shape[0] < z.shape[1]:
            g = zc @ zc.T
            _ = g @ zc
        else:
            g = zc.T @ zc
            _ = zc @ g


VARIANTS = {"multivic": multivic_loss, "released_dxd": released_dxd_loss, "floor": gram_floor}


def _inputs(n: int, d: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator(device="cpu").manual_seed(0)
    z_a = torch.randn(n, d, generator=g).to(device).requires_grad_()
    z_b = torch.randn(n, d, generator=g).to(device).requires_grad_()
    return z_a, z_b


def _run_once(variant: str, z_a: torch.Tensor, z_b: torch.Tensor) -> None:
    out = VARIANTS[variant](z_a, z_b)
    if out is not None:
        out.backward()
        z_a.grad = z_b.grad = None


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_variant(variant: str, n: int, d: int, device: str, repeats: int) -> float:
    z_a, z_b = _inputs(n, d, device)
    _run_once(variant, z_a, z_b)  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        _run_once(variant, z_a, z_b)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_memory_mb(variant: str, n: int, d: int, device: str) -> float:
    """Peak bytes the variant needs beyond its inputs, in MiB."""
    if device == "cuda":
        z_a, z_b = _inputs(n, d, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _run_once(variant, z_a, z_b)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20

    # CPU: a child process per measurement, max RSS with the variant minus max RSS without.
    def child(v: str) -> float:
        cmd = [sys.executable, __file__, "--child", v, f"{n}x{d}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ})
        return float(json.loads(out.stdout.strip().splitlines()[-1])["maxrss_kb"])

    return max(0.0, child(variant) - child("none")) / 1024


def _child(variant: str, shape: str) -> None:
    n, d = (int(s) for s in shape.split("x"))
    z_a, z_b = _inputs(n, d, "cpu")
    (z_a.sum() + z_b.sum()).backward()  # the baseline allocates input gradients too
    z_a.grad = z_b.grad = None
    if variant != "none":
        _run_once(variant, z_a, z_b)
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss across exec from the parent,
    # which has grown during the timings; VmHWM belongs to this process's own address space.
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    print(json.dumps({"maxrss_kb": int(hwm.split()[1])}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", nargs="*", default=["256x2048", "256x8192", "2048x8192"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--devices", nargs="*", default=None, help="cpu and/or cuda (default: cpu, plus cuda if present)")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(*args.child)
        return
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, float32, forward+backward, median of "
        f"{args.repeats}"
    )
    header = (
        f"{'device':<6} {'n x d':>11} {'multivic ms':>12} {'d×d ms':>10} {'floor ms':>10} {'speed-up':>9} "
        f"{'vs floor':>9} {'multivic MiB':>13} {'d×d MiB':>9}"
    )
    print(header)
    for device in devices:
        for shape in args.shapes:
            n, d = (int(s) for s in shape.split("x"))
            t_ours = time_variant("multivic", n, d, device, args.repeats)
            t_ref = time_variant(
                "released_dxd", n, d, device, max(1, min(args.repeats, 3)) if d * d * n > 2**34 else args.repeats
            )
            t_floor = time_variant("floor", n, d, device, args.repeats)
            m_ours = peak_memory_mb("multivic", n, d, device)
            m_ref = peak_memory_mb("released_dxd", n, d, device)
            print(
                f"{device:<6} {shape:>11} {t_ours * 1e3:>12.1f} {t_ref * 1e3:>10.1f} {t_floor * 1e3:>10.1f} "
                f"{t_ref / t_ours:>8.1f}x {t_ours / t_floor:>8.2f}x {m_ours:>13.0f} {m_ref:>9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
