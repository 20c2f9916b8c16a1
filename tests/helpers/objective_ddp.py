"""The model, batch and objectives shared by the 2-process run and its single-process reference."""

import torch
from torch import nn

from multivic.registry import OBJECTIVES

# (case id, objective name, keyword arguments): every case runs in one 2-process launch.
CASES = [
    ("vicreg-gram", "vicreg", {"covariance_form": "gram"}),
    ("vicreg-covariance", "vicreg", {"covariance_form": "covariance"}),
    ("vicreg-per-branch", "vicreg", {"std_coeff": [25.0, 10.0], "cov_coeff": [1.0, 3.0]}),
    ("barlow_twins-gram", "barlow_twins", {"covariance_form": "gram", "variance_coeff": 2.0}),
    ("barlow_twins-covariance", "barlow_twins", {"covariance_form": "covariance", "lambda_offdiag": 0.05}),
    ("infonce-learnable", "infonce", {"temperature": 0.2}),
    ("infonce-fixed", "infonce", {"learnable_temperature": False, "variance_coeff": 1.0}),
    ("vsepp-max-sum", "vsepp", {}),
    ("vsepp-all-mean", "vsepp", {"max_violation": False, "reduction": "mean", "variance_coeff": 1.0}),
]


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 24)).double()


class Joint(nn.Module):
    """The model and the objective as one module, so that DDP averages the objective's own
    parameters (InfoNCE's temperature) too. Returns the loss and the terms by sorted name."""

    def __init__(self, objective: str, kwargs: dict) -> None:
        super().__init__()
        self.net = make_model()
        self.objective = OBJECTIVES.create(objective, **kwargs).double()

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor):
        out = self.objective(self.net(x_a), self.net(x_b))
        return out.loss, torch.stack([out.terms[k] for k in sorted(out.terms)])


def make_batch(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x_a = torch.randn(n, 5, generator=g, dtype=torch.float64)
    return x_a, x_a + 0.3 * torch.randn(n, 5, generator=g, dtype=torch.float64)
