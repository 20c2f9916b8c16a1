"""The model and batch shared by the 2-process run and its single-process reference."""

import torch
from torch import nn


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 24)).double()


def make_batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x_a = torch.randn(n, 5, generator=g, dtype=torch.float64)
    return x_a, x_a + 0.3 * torch.randn(n, 5, generator=g, dtype=torch.float64)
