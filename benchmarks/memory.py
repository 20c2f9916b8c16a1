"""Peak memory of a training step with multivic's VICReg loss against the released code's d×d
arrangement of the same formula, at batch 256 and embedding width 8192 (issue 15).

    uv run python benchmarks/memory.py                  # CPU, and CUDA when present
    uv run python benchmarks/memory.py --batch 256 --dim 8192 --devices cpu

Two rows per device:
- loss: forward + backward of the loss alone, on two [n, d] embeddings that require grad;
- step: forward + backward of a whole branch step: ResNet-18 (torchvision, 32 px images, as in
  the image quick-start) with the paper's expander d-d-d, shared by both views, then the loss.
  The optimiser is left out (it does not depend on the loss).

The d×d loss is ``released_dxd_loss`` of benchmarks/loss.py (cov = Zc^T Zc/(n-1), the
off-diagonal mask, autograd backward); multivic's is ``VICRegLoss`` (the n×n Gram form when
n < d, with its hand-written backward).

Method. CUDA: torch.cuda.max_memory_allocated() during the step minus memory_allocated() just
before it (the model, its inputs and nothing else), in-process. CPU: a fresh child process per
measurement builds the model and inputs, resets the kernel's peak-RSS counter
(``echo 5 > /proc/self/clear_refs``), runs one step, and reports VmHWM minus the RSS before
the step. The child runs with MALLOC_MMAP_THRESHOLD_=131072 so glibc maps every block of
128 KiB or more on its own and unmaps it on free: freed tensors leave the RSS, and a later
allocation cannot hide in pages an earlier one left resident. The step's deltas include the
parameter gradients (allocated by the first backward: the same for both losses).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loss import _inputs, multivic_loss, released_dxd_loss  # noqa: E402  (benchmarks/loss.py)

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "multivic": multivic_loss,
    "released_dxd": released_dxd_loss,
}
IMAGE_SIZE = 32


def _branch(d: int, device: str) -> torch.nn.Module:
    from multivic.branch import build_branch

    torch.manual_seed(0)
    return build_branch("image", "resnet18", {}, f"{d}-{d}-{d}").to(device).train()


def _images(n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(n, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g).to(device) for _ in range(2))  # type: ignore[return-value]


def _setup(what: str, n: int, d: int, device: str) -> Callable[[str], None]:
    """The inputs (and model) of ``what``; returns a function running one step with a loss."""
    if what == "loss":
        z_a, z_b = _inputs(n, d, device)

        def run(loss: str) -> None:
            LOSSES[loss](z_a, z_b).backward()

        return run
    branch, (x_a, x_b) = _branch(d, device), _images(n, device)

    def step(loss: str) -> None:
        LOSSES[loss](branch(x_a), branch(x_b)).backward()

    return step


def _status_kb(field: str) -> int:
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1])


def _child(what: str, loss: str, n: int, d: int) -> None:
    torch.set_num_threads(int(os.environ.get("MEMORY_THREADS", torch.get_num_threads())))
    run = _setup(what, n, d, "cpu")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
    before = _status_kb("VmRSS")
    run(loss)
    print(json.dumps({"delta_kb": _status_kb("VmHWM") - before, "peak_kb": _status_kb("VmHWM")}))


def peak_mib(what: str, loss: str, n: int, d: int, device: str) -> tuple[float, float]:
    """(peak beyond the model and inputs, absolute peak) of one step, in MiB."""
    if device == "cuda":
        run = _setup(what, n, d, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run(loss)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        del run
        torch.cuda.empty_cache()
        return (peak - base) / 2**20, peak / 2**20
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MEMORY_THREADS": str(torch.get_num_threads())}
    cmd = [sys.executable, __file__, "--child", what, loss, str(n), str(d)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    return rec["delta_kb"] / 1024, rec["peak_kb"] / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--dim", type=int, default=8192)
    p.add_argument("--devices", nargs="*", default=None, help="cpu and/or cuda (default: cpu, plus cuda if present)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        what, loss, n, d = args.child
        _child(what, loss, int(n), int(d))
        return
    n, d = args.batch, args.dim
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(
        f"torch {torch.__version__}, float32, forward+backward, batch {n}, width {d}; "
        f"step = ResNet-18 ({IMAGE_SIZE} px) + expander {d}-{d}-{d}, shared by both views\n"
    )
    print(
        "| device | what | multivic MiB | d×d MiB | d×d / multivic | d×d − multivic MiB | peak MiB (multivic / d×d) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for device in devices:
        for what in ("loss", "step"):
            ours, ours_peak = peak_mib(what, "multivic", n, d, device)
            ref, ref_peak = peak_mib(what, "released_dxd", n, d, device)
            print(
                f"| {device} | {what} | {ours:.0f} | {ref:.0f} | {ref / max(ours, 1e-9):.1f}× | {ref - ours:.0f} | "
                f"{ours_peak:.0f} / {ref_peak:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
