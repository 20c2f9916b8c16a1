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


# --------------------------------------------------------------------------------------------
# The other objectives, written from their papers' and official code's formulas, no helpers
# shared with multivic. Plain float64 arithmetic, loops where the formula is a loop.
# --------------------------------------------------------------------------------------------


def reference_variance(x, y, gamma=1.0, eps=1e-4):
    """VICReg's variance hinge of both branches, halved: (v(x) + v(y)) / 2."""
    total = 0.0
    for z in (x, y):
        n = z.shape[0]
        var = ((z - z.mean(dim=0)) ** 2).sum(dim=0) / (n - 1)
        total = total + torch.clamp(gamma - torch.sqrt(var + eps), min=0).mean()
    return total / 2


def reference_barlow_twins(x, y, lambd=5e-3, scale=1.0, bn_eps=1e-5):
    """Returns (loss, on_diagonal, off_diagonal): the official code's d×d arrangement with
    BatchNorm1d(affine=False) in training mode (biased variance)."""
    n, d = x.shape

    def bn(z):
        mean = z.sum(dim=0) / n
        var = ((z - mean) ** 2).sum(dim=0) / n
        return (z - mean) / torch.sqrt(var + bn_eps)

    c = bn(x).T @ bn(y) / n
    on = ((torch.diagonal(c) - 1) ** 2).sum()
    off = (off_diagonal(c) ** 2).sum()
    return scale * (on + lambd * off), on, off


def _unit_rows(z):
    return z / torch.sqrt((z * z).sum(dim=1, keepdim=True))


def reference_infonce(x, y, logit_scale):
    """Returns (loss, a_to_b, b_to_a): CLIP's symmetric cross-entropy, one row at a time."""
    a, b = _unit_rows(x), _unit_rows(y)
    n = a.shape[0]
    a_to_b, b_to_a = 0.0, 0.0
    for i in range(n):
        row_ab = logit_scale * (b @ a[i])  # [n]: a_i against every b_j
        row_ba = logit_scale * (a @ b[i])
        a_to_b = a_to_b - (row_ab[i] - torch.log(torch.exp(row_ab).sum()))
        b_to_a = b_to_a - (row_ba[i] - torch.log(torch.exp(row_ba).sum()))
    a_to_b, b_to_a = a_to_b / n, b_to_a / n
    return (a_to_b + b_to_a) / 2, a_to_b, b_to_a


def reference_vsepp(x, y, margin=0.2, max_violation=True):
    """Returns (loss, a_to_b, b_to_a) summed over the batch: the official ContrastiveLoss
    (scores, its diagonal expanded both ways, the diagonal masked, max or sum)."""
    scores = _unit_rows(x) @ _unit_rows(y).T
    n = scores.shape[0]
    diagonal = scores.diag().view(n, 1)
    d1 = diagonal.expand_as(scores)  # d1[i, j] = S_ii: image i's own caption
    d2 = diagonal.t().expand_as(scores)  # d2[i, j] = S_jj: caption j's own image
    eye = torch.eye(n, dtype=torch.bool)
    cost_s = (margin + scores - d1).clamp(min=0).masked_fill(eye, 0)  # row i: negatives j of side b
    cost_im = (margin + scores - d2).clamp(min=0).masked_fill(eye, 0)  # column j: negatives i of side a
    if max_violation:
        cost_s, cost_im = cost_s.max(dim=1)[0], cost_im.max(dim=0)[0]
    return cost_s.sum() + cost_im.sum(), cost_s.sum(), cost_im.sum()
