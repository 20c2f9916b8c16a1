"""VSEPPLoss against an independent float64 transcription of the official VSE++ ContrastiveLoss."""

import pytest
import torch

from multivic.objectives import VSEPPLoss
from tests.helpers.objective_reference import reference_variance, reference_vsepp

SHAPES = [(2, 7), (16, 64), (40, 24)]


def _pair(n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(n, d, generator=g, dtype=dtype) * 0.7 + 0.3).requires_grad_()
    b = (a.detach() + torch.randn(n, d, generator=g, dtype=dtype) * 1.5).requires_grad_()
    return a, b


def _close(got, want, rtol=1e-10):
    assert abs(got.item() - want.item()) <= rtol * max(abs(want.item()), 1e-300), (got.item(), want.item())


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("max_violation", [True, False])
@pytest.mark.parametrize("margin", [0.2, 0.5])
def test_matches_reference_value_and_gradients(n, d, max_violation, margin):
    a, b = _pair(n, d, seed=n * 1000 + d)
    out = VSEPPLoss(margin=margin, max_violation=max_violation)(a, b)
    ref = reference_vsepp(a, b, margin, max_violation)
    assert ref[0].item() > 0  # the hinge is active: the test compares something
    for got, want in zip((out.loss, out.terms["a_to_b"], out.terms["b_to_a"]), ref):
        _close(got, want)
    for x, y in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref[0], (a, b))):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)


def test_mean_reduction_divides_by_the_batch():
    a, b = _pair(16, 8, seed=1)
    _close(VSEPPLoss(reduction="mean")(a, b).loss, reference_vsepp(a, b)[0] / 16)


def test_zero_when_every_pair_beats_its_negatives_by_the_margin():
    z = torch.eye(6, dtype=torch.float64)
    assert VSEPPLoss(margin=0.2)(z, z).loss.item() == 0.0


def test_variance_regulariser_is_added():
    a, b = _pair(12, 20, seed=5)
    out = VSEPPLoss(variance_coeff=2.0)(a, b)
    ref = reference_vsepp(a, b)[0] + 2.0 * reference_variance(a, b)
    _close(out.loss, ref)
    for x, y in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref, (a, b))):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)


def test_metrics_hold_the_terms_and_the_branch_stds():
    m = VSEPPLoss()(*_pair(10, 6, seed=6, dtype=torch.float32)).metrics()
    assert set(m) >= {"loss", "a_to_b", "b_to_a", "a/std_mean", "b/std_min"}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"margin": -0.1}, "^margin"),
        ({"reduction": "max"}, "^reduction"),
        ({"variance_coeff": -1.0}, "^variance_coeff"),
    ],
)
def test_bad_options_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VSEPPLoss(**kwargs)
