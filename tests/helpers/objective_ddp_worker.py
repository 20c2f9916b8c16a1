"""Run under torchrun with 2 processes: for each case of ddp_common.CASES, one DDP step on this
process's shard of the batch; rank 0 saves every rank's loss and terms and the averaged gradients.

Usage: torchrun --standalone --nproc_per_node=2 tests/helpers/objective_ddp_worker.py OUT.pt [CASE ...]
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tests.helpers.objective_ddp import CASES, Joint, make_batch


def main(out_path: str, only: list[str]) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    x_a, x_b = make_batch()
    rows = x_a.shape[0] // world
    local = slice(rank * rows, (rank + 1) * rows)
    results = {}
    ddp = joint = None
    for case, objective, kwargs in CASES:
        if only and case not in only:
            continue
        joint = Joint(objective, kwargs)
        ddp = DistributedDataParallel(joint)
        loss, terms = ddp(x_a[local], x_b[local])
        loss.backward()
        per_rank = torch.cat([loss.detach().reshape(1), terms.detach()])
        parts = [torch.zeros_like(per_rank) for _ in range(world)]
        dist.all_gather(parts, per_rank)
        results[case] = {
            "per_rank": torch.stack(parts),  # [world, 1 + terms]: loss, then the terms by name
            "grads": {k: p.grad.clone() for k, p in joint.named_parameters()},
        }
    if rank == 0:
        torch.save(results, out_path)
    del ddp, joint
    # Both ranks leave together, and without gloo's teardown: destroying the process group (or
    # letting interpreter exit destroy it) aborted a rank with "terminate called without an
    # active exception" in two loaded CI runs, after the results were saved. Nothing is left to
    # flush but stdout and stderr.
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
