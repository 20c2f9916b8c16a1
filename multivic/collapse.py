"""Collapse statistics of a batch of embeddings: the numbers that say whether a run collapses.

- RankMe (Garrido et al., 2023, "RankMe: assessing the downstream performance of pretrained
  self-supervised representations by their rank"): exp of the entropy of the normalised singular
  values of the *uncentred* matrix, p_k = σ_k / ‖σ‖₁ + ε. Uncentred on purpose: a collapsed
  batch (every row ≈ one vector c plus tiny noise) has one dominant singular value, so RankMe is
  about 1; centring would remove c and leave the noise, whose spectrum is flat, so an
  "effective rank" of centred embeddings reports a collapsed run as nearly full rank.
- Per-dimension standard deviation: mean, min, and the fraction of dimensions under γ (what the
  variance term pushes up).
- The RMS off-diagonal correlation: how much the dimensions still share (what the covariance
  term pushes down), on the correlation rather than the covariance so it is scale-free.
"""

from __future__ import annotations

import torch
from torch import Tensor

RANKME_EPS = 1e-7  # the ε of RankMe's p_k


@torch.no_grad()
def singular_values(z: Tensor) -> Tensor:
    """The singular values of the *uncentred* ``z`` [N, D], in float64, largest first: [min(N, D)].
    NaN-filled when ``z`` holds NaN or Inf (a diverged step)."""
    z = z.detach().double()
    if not bool(torch.isfinite(z).all()):
        return torch.full((min(z.shape),), float("nan"), dtype=torch.float64)
    return torch.linalg.svdvals(z)


def rankme_of_spectrum(s: Tensor, eps: float = RANKME_EPS) -> float:
    """RankMe from singular values ``s`` [K] (see :func:`rankme`)."""
    s = s.double()
    if not bool(torch.isfinite(s).all()):
        return float("nan")
    p = s / s.sum().clamp_min(1e-300) + eps
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def rankme(z: Tensor, eps: float = RANKME_EPS) -> float:
    """RankMe of ``z`` [N, D]: between 1 (rank one) and min(N, D) (flat spectrum). Not centred.
    NaN when ``z`` holds NaN or Inf (a diverged step)."""
    return rankme_of_spectrum(singular_values(z), eps)


@torch.no_grad()
def collapse_stats(z: Tensor, gamma: float = 1.0) -> dict[str, float]:
    """``rankme``, ``std_mean``, ``std_min``, ``std_below_gamma`` and ``corr_offdiag_rms`` of ``z`` [N, D].

    The std is per dimension over rows (unbiased); a dimension with zero variance counts as
    correlation 0 (it shares nothing).
    """
    z = z.detach().double()
    n, d = z.shape
    std = z.std(dim=0, unbiased=True)
    zc = z - z.mean(dim=0)
    scale = torch.where(std > 0, std, torch.ones_like(std))
    corr = (zc / scale).T @ (zc / scale) / max(n - 1, 1)
    off = corr - torch.diag(torch.diagonal(corr))
    rms = float(torch.sqrt((off**2).sum() / max(d * (d - 1), 1)))
    return {
        "rankme": rankme(z),
        "std_mean": float(std.mean()),
        "std_min": float(std.min()),
        "std_below_gamma": float((std < gamma).double().mean()),
        "corr_offdiag_rms": rms,
    }


@torch.no_grad()
def branch_collapse(
    name: str, embeddings: Tensor, representations: Tensor, gamma: float = 1.0
) -> tuple[dict[str, float], dict[str, Tensor]]:
    """A branch's end-of-run collapse picture from its evaluation outputs.

    Args:
        name: the branch's name, prefixing every key.
        embeddings: [N, D] expander outputs; representations: [N, R] encoder outputs.
    Returns:
        metrics: ``<name>/`` + :func:`collapse_stats` of the embeddings, and ``<name>/rankme_repr``
            (RankMe of the representations);
        arrays: ``<name>/embedding_singular_values`` [min(N, D)], ``<name>/representation_singular_values``
            [min(N, R)] (uncentred, largest first: the spectra of dimensional collapse) and
            ``<name>/embedding_std`` [D] (per-dimension std, for its histogram against γ), float64.
    """
    stats = collapse_stats(embeddings, gamma)
    spectrum_repr = singular_values(representations)
    metrics = {f"{name}/{k}": v for k, v in stats.items()}
    metrics[f"{name}/rankme_repr"] = rankme_of_spectrum(spectrum_repr)
    arrays = {
        f"{name}/embedding_singular_values": singular_values(embeddings),
        f"{name}/representation_singular_values": spectrum_repr,
        f"{name}/embedding_std": embeddings.detach().double().std(dim=0, unbiased=True),
    }
    return metrics, arrays
