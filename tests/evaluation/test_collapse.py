"""RankMe and the collapse statistics against hand-computed cases and a numpy transcription."""

import numpy as np
import pytest
import torch

from multivic.collapse import RANKME_EPS, collapse_stats, rankme


def numpy_rankme(z: np.ndarray, eps: float = RANKME_EPS) -> float:
    """Garrido et al. 2023, eq. 1, transcribed: p_k = σ_k / Σσ + ε, RankMe = exp(-Σ p_k log p_k)."""
    s = np.linalg.svd(z.astype(np.float64), compute_uv=False)
    p = s / s.sum() + eps
    return float(np.exp(-(p * np.log(p)).sum()))


def test_identity_is_full_rank():
    assert abs(rankme(torch.eye(16)) - 16) < 1e-3


def test_rank_one_is_one():
    u = torch.randn(50, 1, dtype=torch.float64)
    v = torch.randn(1, 12, dtype=torch.float64)
    assert abs(rankme(u @ v) - 1) < 1e-3


def test_equal_singular_values_on_k_directions_give_k():
    u, _ = torch.linalg.qr(torch.randn(40, 5, dtype=torch.float64))  # orthonormal columns
    v, _ = torch.linalg.qr(torch.randn(8, 5, dtype=torch.float64))
    z = u @ torch.diag(torch.full((5,), 3.0, dtype=torch.float64)) @ v.T  # 5 equal singular values
    assert abs(rankme(z) - 5) < 1e-2


def test_a_collapsed_batch_with_tiny_noise_has_low_rankme():
    """Every row the same vector plus noise 1e-3: RankMe ~1; the centred spectrum would be flat."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(1, 128, generator=g)
    z = c + 1e-3 * torch.randn(256, 128, generator=g)
    assert rankme(z) < 1.5
    centred = rankme(z - z.mean(0))
    assert centred > 90  # what the old centred "effective rank" reported for a collapsed run
    s = collapse_stats(z)
    assert s["std_mean"] < 2e-3 and s["std_below_gamma"] == 1.0


def test_matches_numpy_on_random_matrices():
    rng = np.random.default_rng(1)
    for shape in [(64, 16), (16, 64), (200, 30)]:
        z = rng.normal(size=shape) * rng.uniform(0.1, 3, size=shape[1])
        assert abs(rankme(torch.from_numpy(z)) - numpy_rankme(z)) < 1e-9


def test_correlation_rms_of_copied_dimensions_is_one():
    x = torch.randn(500, 1, dtype=torch.float64)
    z = torch.cat([x, 2 * x, -x], dim=1)  # perfectly (anti)correlated: |corr| = 1 off the diagonal
    assert abs(collapse_stats(z)["corr_offdiag_rms"] - 1) < 1e-9


def test_branch_collapse_keeps_the_spectra_and_stds_numpy_gives():
    import numpy as np

    from multivic.collapse import branch_collapse

    g = torch.Generator().manual_seed(3)
    emb, rep = torch.randn(40, 12, generator=g) + 2.0, torch.randn(40, 60, generator=g)
    metrics, arrays = branch_collapse("img", emb, rep, gamma=1.0)
    assert np.allclose(
        arrays["img/embedding_singular_values"].numpy(), np.linalg.svd(emb.double().numpy(), compute_uv=False)
    )
    assert np.allclose(
        arrays["img/representation_singular_values"].numpy(), np.linalg.svd(rep.double().numpy(), compute_uv=False)
    )
    assert arrays["img/representation_singular_values"].shape == (40,)  # min(N, R)
    assert np.allclose(arrays["img/embedding_std"].numpy(), emb.double().numpy().std(axis=0, ddof=1))
    assert metrics["img/rankme"] == pytest.approx(rankme(emb)) and metrics["img/rankme_repr"] == pytest.approx(
        rankme(rep)
    )
    assert metrics["img/std_mean"] == pytest.approx(float(emb.double().std(0).mean()))
