"""An independent float64 transcription of the released VICReg code's loss (d×d arrangement).

Kept deliberately naive: the explicit covariance matrix, the off-diagonal mask, no shared
helpers with multivic. Tests compare multivic's loss to this.
"""

import torch
import torch.nn.functional as F


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def reference_vicreg(x, y, sim=25.0, std=25.0, cov=1.0, gamma=1.0, eps=1e-4, paper=False):
    """Returns (loss, invariance, variance, covariance) as the released code computes them."""
    n, d = x.shape
    repr_loss = F.mse_loss(x, y)
    x = x - x.mean(dim=0)
    y = y - y.mean(dim=0)
    std_x = torch.sqrt(x.var(dim=0) + eps)
    std_y = torch.sqrt(y.var(dim=0) + eps)
    std_loss = torch.mean(F.relu(gamma - std_x)) + torch.mean(F.relu(gamma - std_y))
    if not paper:
        std_loss = std_loss / 2
    cov_x = (x.T @ x) / (n - 1)
    cov_y = (y.T @ y) / (n - 1)
    cov_loss = off_diagonal(cov_x).pow(2).sum() / d + off_diagonal(cov_y).pow(2).sum() / d
    loss = sim * repr_loss + std * std_loss + cov * cov_loss
    return loss, repr_loss, std_loss, cov_loss
