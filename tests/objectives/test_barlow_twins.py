"""BarlowTwinsLoss against an independent float64 transcription of the official code."""

import pytest
import torch

from multivic.objectives import BarlowTwinsLoss
from multivic.objectives.barlow_twins import barlow_twins_terms, cross_correlation
from tests.helpers.objective_reference import reference_barlow_twins, reference_variance

SHAPES = [(2, 7), (16, 64), (32, 32), (96, 24)]  # n = 2, n < d, n = d, n > d


def _pair(n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(n, d, generator=g, dtype=dtype) * 0.7 + 0.3).requires_grad_()
    b = (a.detach() + torch.randn(n, d, generator=g, dtype=dtype) * 0.5).requires_grad_()
    return a, b


def _close(got, want, rtol=1e-10):
    assert abs(got.item() - want.item()) <= rtol * max(abs(want.item()), 1e-300), (got.item(), want.item())


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("form", ["auto", "gram", "covariance"])
def test_matches_reference_value_and_gradients(n, d, form):
    a, b = _pair(n, d, seed=n * 1000 + d)
    out = BarlowTwinsLoss(covariance_form=form)(a, b)
    ref = reference_barlow_twins(a, b)
    for got, want in zip((out.loss, out.terms["on_diagonal"], out.terms["off_diagonal"]), ref):
        _close(got, want)
    for x, y in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref[0], (a, b))):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)


def test_gram_form_equals_the_d_by_d_form():
    # Σ_{i≠j} C_ij² = ⟨A A^T, B B^T⟩/n² - Σ C_jj²: the n×n route gives the d×d value and gradient.
    a, b = _pair(24, 96, seed=1)
    on_g, off_g = barlow_twins_terms(a, b, form="gram")
    on_c, off_c = barlow_twins_terms(a, b, form="covariance")
    c = cross_correlation(a, b)
    direct = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    _close(off_g, off_c, 1e-11)
    _close(off_g, direct, 1e-11)
    _close(on_g, on_c, 1e-12)
    g_g = torch.autograd.grad(on_g + 5e-3 * off_g, (a, b))
    g_c = torch.autograd.grad(on_c + 5e-3 * off_c, (a, b))
    for x, y in zip(g_g, g_c):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("n,d", [(64, 512), (512, 64)])
def test_forms_agree_in_float32(n, d):
    a, b = _pair(n, d, seed=4, dtype=torch.float32)
    want = reference_barlow_twins(a.detach().double(), b.detach().double())[2].item()
    for form in ("gram", "covariance"):
        got = BarlowTwinsLoss(covariance_form=form)(a, b).terms["off_diagonal"].item()
        assert abs(got - want) / want < 1e-4, form


def test_auto_takes_the_gram_form_below_d_rows(monkeypatch):
    from multivic.objectives import barlow_twins

    seen = []
    original = barlow_twins._shard_partials
    monkeypatch.setattr(
        barlow_twins, "_shard_partials", lambda a, b, form, *r: seen.append(form) or original(a, b, form, *r)
    )
    BarlowTwinsLoss()(*_pair(8, 16, seed=2))
    BarlowTwinsLoss()(*_pair(16, 16, seed=2))
    assert seen == ["gram", "covariance"]


def test_lambda_and_scales():
    a, b = _pair(12, 20, seed=3)
    ref = reference_barlow_twins(a, b, lambd=0.1, scale=0.024)
    _close(BarlowTwinsLoss(lambda_offdiag=0.1, scale_loss=0.024)(a, b).loss, ref[0])
    # scale_by_dim: the authors' research-code scaling 196/d.
    research = reference_barlow_twins(a, b, scale=196 / 20)[0]
    _close(BarlowTwinsLoss(scale_loss=196, scale_by_dim=True)(a, b).loss, research)


def test_variance_regulariser_is_added():
    a, b = _pair(12, 20, seed=5)
    out = BarlowTwinsLoss(variance_coeff=3.0, gamma=1.5)(a, b)
    ref_var = reference_variance(a, b, gamma=1.5)
    _close(out.terms["variance"], ref_var)
    ref = reference_barlow_twins(a, b)[0] + 3.0 * ref_var
    _close(out.loss, ref)
    for x, y in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref, (a, b))):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)
    assert "variance" not in BarlowTwinsLoss()(a, b).terms


def test_metrics_hold_the_terms_and_the_branch_stds():
    a, b = _pair(10, 6, seed=6)
    m = BarlowTwinsLoss()(a, b).metrics()
    assert set(m) >= {
        "loss",
        "on_diagonal",
        "off_diagonal",
        "a/std_mean",
        "a/std_min",
        "a/std_below_gamma",
        "b/std_mean",
    }
    assert torch.allclose(m["a/std_mean"], torch.sqrt(a.detach().var(dim=0) + 1e-4).mean())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"lambda_offdiag": -1.0}, "^lambda_offdiag"),
        ({"scale_loss": 0.0}, "^scale_loss"),
        ({"bn_eps": 0.0}, "^bn_eps"),
        ({"variance_coeff": -1.0}, "^variance_coeff"),
        ({"gamma": 0.0}, "^gamma"),
        ({"eps": 0.0}, "^eps"),
        ({"covariance_form": "fast"}, "^covariance_form"),
    ],
)
def test_bad_options_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BarlowTwinsLoss(**kwargs)


def test_gram_form_falls_back_to_float64_when_it_cancels(monkeypatch):
    # Forced (every batch counts as cancelling): the float64 pass gives the float64 value, and
    # the gradient still flows through it.
    from multivic.objectives import _numerics, barlow_twins

    monkeypatch.setattr(_numerics, "GRAM_MAX_CANCELLATION", 0.0)
    dtypes = []
    original = barlow_twins._shard_partials
    monkeypatch.setattr(barlow_twins, "_shard_partials", lambda a, *r: dtypes.append(a.dtype) or original(a, *r))
    a, b = _pair(32, 256, seed=8, dtype=torch.float32)
    out = BarlowTwinsLoss(covariance_form="gram")(a, b)
    assert dtypes == [torch.float32, torch.float64]
    assert out.loss.dtype == torch.float32
    a64, b64 = a.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    ref = reference_barlow_twins(a64, b64)
    assert abs(out.terms["off_diagonal"].item() - ref[2].item()) / ref[2].item() < 1e-6
    for g, g_ref in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref[0], (a64, b64))):
        assert ((g.double() - g_ref).norm() / g_ref.norm()).item() < 1e-4
