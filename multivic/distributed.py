"""Autograd-aware collectives for losses that need the whole global batch.

`accelerator.gather` and `torch.distributed.all_gather` return tensors cut off from the
autograd graph, so a loss computed on their output sends no gradient back to the other
processes' rows. The two functions here keep the graph:

* :func:`gather_with_grad` concatenates every process's rows; its backward sums the
  incoming gradients over processes and returns this process's slice. Every process's
  loss depends on every row, so the gradient a row receives is the sum of what all
  processes' losses send it.
* :func:`all_reduce_sum_with_grad` sums a tensor over processes; its backward is again a
  sum over processes (the adjoint of a sum-broadcast is a sum-broadcast).

With these, each process's loss L_r is the same function of the global batch, and the
DDP average (1/W)·Σ_r ∂L_r/∂θ equals the gradient of one process run on the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """Number of processes in the default group, 1 when torch.distributed is not in use."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def rank() -> int:
    """This process's rank in the default group, 0 when torch.distributed is not in use."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.rows = x.shape[0]
        ctx.rank = dist.get_rank()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows]


class _AllReduceSumWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` [n_local, ...] from all processes into [n_local·W, ...], with gradient.

    Every process must pass the same number of rows (the trainer drops incomplete batches).
    With one process this returns ``x`` unchanged.
    """
    if world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)


def all_reduce_sum_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over processes, with gradient; identity with one process."""
    if world_size() == 1:
        return x
    return _AllReduceSumWithGrad.apply(x)
