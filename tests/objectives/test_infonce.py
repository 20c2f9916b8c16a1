"""InfoNCELoss against an independent float64 transcription of CLIP's symmetric loss."""

import math

import pytest
import torch

from multivic.objectives import InfoNCELoss
from tests.helpers.objective_reference import reference_infonce, reference_variance

SHAPES = [(2, 7), (16, 64), (40, 24)]


def _pair(n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(n, d, generator=g, dtype=dtype) * 0.7 + 0.3).requires_grad_()
    b = (a.detach() + torch.randn(n, d, generator=g, dtype=dtype) * 0.8).requires_grad_()
    return a, b


def _close(got, want, rtol=1e-10):
    assert abs(got.item() - want.item()) <= rtol * max(abs(want.item()), 1e-300), (got.item(), want.item())


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_matches_reference_value_and_gradients(n, d, temperature):
    a, b = _pair(n, d, seed=n * 1000 + d)
    loss_fn = InfoNCELoss(temperature=temperature).double()
    out = loss_fn(a, b)
    # The parameter holds log(1/τ) in float32 (as CLIP's): the reference uses that value.
    scale = loss_fn.log_logit_scale.detach().exp().requires_grad_()
    ref = reference_infonce(a, b, scale)
    for got, want in zip((out.loss, out.terms["a_to_b"], out.terms["b_to_a"]), ref):
        _close(got, want)
    g_out = torch.autograd.grad(out.loss, (a, b, loss_fn.log_logit_scale))
    g_ref = torch.autograd.grad(ref[0], (a, b, scale))
    for x, y in zip(g_out[:2], g_ref[:2]):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)
    # d/dt of L(exp t) = L'(s)·s: the learnable log-scale receives the temperature's gradient.
    _close(g_out[2], g_ref[2] * scale.detach())


def test_fixed_temperature_has_no_parameter():
    loss_fn = InfoNCELoss(temperature=0.1, learnable_temperature=False)
    assert list(loss_fn.parameters()) == []
    a, b = _pair(8, 16, seed=1, dtype=torch.float32)
    out = loss_fn(a, b)
    assert out.stats["temperature"].item() == pytest.approx(0.1)
    assert len(list(InfoNCELoss().parameters())) == 1


def test_logit_scale_clamped_at_its_maximum():
    loss_fn = InfoNCELoss(max_logit_scale=100.0).double()
    with torch.no_grad():
        loss_fn.log_logit_scale.fill_(math.log(500.0))  # as if training had pushed it beyond
    a, b = _pair(8, 16, seed=2)
    out = loss_fn(a, b)
    _close(out.loss, reference_infonce(a, b, 100.0)[0])
    out.loss.backward()
    assert loss_fn.log_logit_scale.grad.item() == 0.0  # no gradient while clamped, as CLIP's clamp


def test_variance_regulariser_is_added():
    a, b = _pair(12, 20, seed=5)
    out = InfoNCELoss(variance_coeff=2.0, learnable_temperature=False).double()(a, b)
    scale = torch.tensor(1 / 0.07, dtype=torch.float32).log().double().exp()  # log(1/τ) held in float32
    ref = reference_infonce(a, b, scale)[0] + 2.0 * reference_variance(a, b)
    _close(out.loss, ref)
    for x, y in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref, (a, b))):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)


def test_metrics_hold_the_terms_the_temperature_and_the_branch_stds():
    m = InfoNCELoss()(*_pair(10, 6, seed=6, dtype=torch.float32)).metrics()
    assert set(m) >= {"loss", "a_to_b", "b_to_a", "temperature", "a/std_mean", "b/std_min"}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"temperature": 0.0}, "^temperature"),
        ({"temperature": 0.001}, "^temperature must be >= 1/max_logit_scale"),
        ({"max_logit_scale": -1.0}, "^max_logit_scale"),
        ({"variance_coeff": -1.0}, "^variance_coeff"),
    ],
)
def test_bad_options_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InfoNCELoss(**kwargs)
