"""What the gathered VICReg loss costs per step as processes are added: 1, 2 and 4 CPU processes
(gloo), the global batch fixed, each process holding batch / world rows.

    uv run python benchmarks/gathered_loss.py                  # n=1024, d=2048, worlds 1 2 4
    uv run python benchmarks/gathered_loss.py --n 512 --d 8192 --worlds 1,2

Two arrangements of the same loss, forward + backward of both branches, median of --repeats
steps after a warm-up, one thread per process:

- ``sharded``: multivic's VICRegLoss: the embeddings are gathered with gradient, and each
  process computes only its rows of the n×n Gram (and its part of C's diagonal); the two
  partial sums are all-reduced. Per branch: n²d/world multiply-adds forward and 2n²d/world
  backward (autograd: the gradients of its row block and of the gathered rows), 3n²d/world in
  all. One process takes the fused path instead: one Gram forward and one product with it
  backward, 2n²d.
- ``redundant``: every process computes the whole loss on the gathered rows with that fused
  one-process path, 2n²d per branch at every world size, as a plain all-gather + loss would.

Each line also prints this arithmetic (multiply-adds per process, forward + backward, both
branches) and the all-gather's bytes received per process (float32, both branches).
With more processes than cores (4 on a 2-core machine), the processes share cores and the wall
time stops falling; the per-process CPU time is printed beside it for that reason.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def worker(n: int, d: int, repeats: int, out: Path) -> None:
    import torch
    import torch.distributed as dist

    from multivic.distributed import gather_with_grad
    from multivic.objectives import VICRegLoss

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    g = torch.Generator().manual_seed(rank)
    rows = n // world
    sharded = VICRegLoss(check_finite=False, covariance_form="gram")
    local = VICRegLoss(check_finite=False, covariance_form="gram", gather=False)

    def redundant(za, zb):
        return local(gather_with_grad(za), gather_with_grad(zb)).loss

    results = {}
    for name, fn in (("sharded", lambda a, b: sharded(a, b).loss), ("redundant", redundant)):
        walls, cpus = [], []
        for i in range(repeats + 1):
            za = torch.randn(rows, d, generator=g, requires_grad=True)
            zb = torch.randn(rows, d, generator=g, requires_grad=True)
            dist.barrier()
            t0, c0 = time.perf_counter(), time.process_time()
            fn(za, zb).backward()
            dist.barrier()
            if i:  # the first is a warm-up
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        results[name] = {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}
    if rank == 0:
        out.write_text(json.dumps(results))
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1024, help="global batch (rows over all processes)")
    p.add_argument("--d", type=int, default=2048, help="embedding width")
    p.add_argument("--worlds", default="1,2,4")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    print(
        f"n = {args.n} rows in all, d = {args.d}; per process: Gram-sized multiply-adds (forward + backward, both "
        "branches), "
        "all-gather bytes received, median step time (wall and CPU)"
    )
    print(
        "| processes | rows / process | MACs / process, sharded | redundant | gather MB / process "
        "| sharded wall | sharded CPU | redundant wall | redundant CPU |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for world in [int(w) for w in args.worlds.split(",")]:
        out = Path(f"/tmp/multivic-gathered-{os.getpid()}-{world}.json")
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "MULTIVIC_GATHERED_WORKER": f"{args.n},{args.d},{args.repeats},{out}",
        }
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}", __file__]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(proc.stderr[-3000:])
        r = json.loads(out.read_text())
        out.unlink()
        n, d = args.n, args.d
        # Both branches, forward + backward (see the docstring).
        sharded_macs = 2 * (2 * n * n * d if world == 1 else 3 * (n // world) * n * d)
        redundant_macs = 2 * 2 * n * n * d
        gather_mb = 2 * (n - n // world) * d * 4 / 2**20  # the rows of the other processes, both branches
        print(
            f"| {world} | {n // world} | {sharded_macs / 1e9:.2f} G | {redundant_macs / 1e9:.2f} G | {gather_mb:.1f} "
            f"| {r['sharded']['wall'] * 1e3:.0f} ms | {r['sharded']['cpu'] * 1e3:.0f} ms "
            f"| {r['redundant']['wall'] * 1e3:.0f} ms | {r['redundant']['cpu'] * 1e3:.0f} ms |",
            flush=True,
        )


if __name__ == "__main__":
    spec = os.environ.get("MULTIVIC_GATHERED_WORKER")
    if spec:
        n, d, repeats, out = spec.split(",")
        worker(int(n), int(d), int(repeats), Path(out))
    else:
        main()
