"""Run under torchrun with 2 processes: DDP step on a shard of the batch, rank 0 saves results.

Usage: torchrun --standalone --nproc_per_node=2 tests/objectives/ddp_worker.py OUT.pt FORM
"""

import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from multivic.objectives import VICRegLoss
from tests.objectives.ddp_common import make_batch, make_model


def main(out_path: str, form: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = make_model()
    ddp = DistributedDataParallel(model)
    x_a, x_b = make_batch()
    rows = x_a.shape[0] // world
    local = slice(rank * rows, (rank + 1) * rows)
    out = VICRegLoss(covariance_form=form)(ddp(x_a[local]), ddp(x_b[local]))
    out.loss.backward()
    losses = [torch.zeros((), dtype=torch.float64) for _ in range(world)]
    dist.all_gather(losses, out.loss.detach())
    if rank == 0:
        torch.save(
            {
                "losses": torch.stack(losses),
                "variance": out.variance.detach(),
                "covariance": out.covariance.detach(),
                "grads": {k: p.grad.clone() for k, p in model.named_parameters()},
            },
            out_path,
        )
    # Both ranks leave together: tearing gloo down while the peer is still writing can abort.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
