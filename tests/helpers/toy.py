"""A tiny vector problem for the training loop: pairs of noisy views of random vectors."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from multivic import Branch, Expander, JointEmbedding
from multivic.build import build_train_settings
from multivic.optim import OptimizerSpec
from multivic.run_dir import RunDir
from multivic.train import TrainSettings, fit

DIM = 6


class PairsOfVectors(Dataset):
    """Item i: two views x_i + 0.05·noise, the noise drawn from torch's global RNG (an augmentation).
    ``constant=True`` makes every x_i the same, so views differ only through the RNG."""

    def __init__(self, n: int = 64, dtype: torch.dtype = torch.float32, constant: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, DIM, generator=g, dtype=dtype)
        if constant:
            self.x[:] = self.x[0]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x = self.x[i]
        return x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x)


class Linear(nn.Module):
    modality = "vector"

    def __init__(self, out_dim: int = 8, poison: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.lin = nn.Linear(DIM, out_dim)
        self.drop = nn.Dropout(dropout)  # draws from the global RNG: resuming must restore it
        self.out_dim = out_dim
        self.poison = poison

    def forward(self, x: Tensor) -> Tensor:
        y = self.drop(self.lin(x))
        return y * float("nan") if self.poison else y


def vicreg_model(poison: bool = False, dropout: float = 0.0) -> JointEmbedding:
    """One shared branch: Linear(6, 8) (then dropout), expander 16-16 (with batch norm), VICReg."""
    torch.manual_seed(0)
    branch = Branch("vec", Linear(poison=poison, dropout=dropout), Expander(8, "16-16"))
    return JointEmbedding(branch, branch)


@dataclass
class MeanOutput:
    loss: Tensor

    def metrics(self) -> dict[str, Tensor]:
        return {"loss": self.loss.detach()}


class RowMeanLoss(nn.Module):
    """mean over rows of ‖z_a - z_b‖² - 0.1·(z_a·z_b): a mean over rows, so the gradient of a batch
    is the mean of its micro-batches' gradients (VICReg's batch statistics are not)."""

    def forward(self, z_a: Tensor, z_b: Tensor) -> MeanOutput:
        return MeanOutput(((z_a - z_b) ** 2).sum(1).mean() - 0.1 * (z_a * z_b).sum(1).mean())


def two_branch_linear_model(dtype: torch.dtype = torch.float64) -> JointEmbedding:
    """Two branches with their own weights, no batch norm (a single-Linear expander), RowMeanLoss."""
    torch.manual_seed(0)
    a = Branch("a", Linear(), Expander(8, "4"))
    b = Branch("b", Linear(), Expander(8, "4"))
    return JointEmbedding(a, b, loss=RowMeanLoss()).to(dtype)  # type: ignore[arg-type]


def adamw(module: nn.Module, label: str = "model", **kw: float) -> OptimizerSpec:
    args = dict(
        base_lr=0.01, weight_decay=1e-4, momentum=0.9, betas=(0.9, 0.999), warmup_epochs=0.0, final_lr_ratio=0.001
    )
    args.update(kw)
    return OptimizerSpec("adamw", module, label=label, **args)  # type: ignore[arg-type]


def settings(**kw: object) -> TrainSettings:
    """The schema's defaults, for a short quiet CPU run in this process (no loader workers), and ``kw``."""
    args: dict[str, object] = dict(epochs=2, batch_size=16, cpu=True, progress=False, log_every=1, num_workers=0)
    args.update(kw)
    return build_train_settings(**args)  # type: ignore[arg-type]


def train(model: JointEmbedding, data: Dataset, root, specs=None, **kw: object):
    """fit with one AdamW over the model unless ``specs`` are given."""
    return fit(model, data, RunDir(root), specs or [adamw(model)], settings(**kw))


def history(root) -> list[dict[str, str]]:
    import csv

    with (root / "history.csv").open() as f:
        return list(csv.DictReader(f))
