"""VICRegLoss against an independent float64 transcription of the released code."""

import pytest
import torch

from multivic.objectives import VICRegLoss, _numerics, covariance_loss, invariance_loss, variance_loss
from multivic.objectives._numerics import FusedVarianceCovariance, resolve_form
from tests.helpers.objective_reference import off_diagonal, reference_vicreg

SHAPES = [(2, 7), (16, 64), (32, 32), (96, 24)]  # n = 2, n < d, n = d, n > d


def _pair(n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = (torch.randn(n, d, generator=g, dtype=dtype) * 0.7 + 0.3).requires_grad_()
    b = (torch.randn(n, d, generator=g, dtype=dtype) * 0.5).requires_grad_()
    return a, b


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("form", ["auto", "gram", "covariance"])
@pytest.mark.parametrize("convention", ["released", "paper"])
def test_matches_reference_value_and_gradients(n, d, form, convention):
    a, b = _pair(n, d, seed=n * 1000 + d)
    out = VICRegLoss(covariance_form=form, variance_convention=convention)(a, b)
    ref = reference_vicreg(a, b, paper=convention == "paper")
    for got, want in zip((out.loss, out.invariance, out.variance, out.covariance), ref):
        assert abs(got.item() - want.item()) <= 1e-10 * max(abs(want.item()), 1e-300)
    g_out = torch.autograd.grad(out.loss, (a, b))
    g_ref = torch.autograd.grad(ref[0], (a, b))
    for x, y in zip(g_out, g_ref):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)


def test_paper_convention_doubles_the_variance_term():
    a, b = _pair(8, 16, seed=1)
    released = VICRegLoss()(a, b)
    paper = VICRegLoss(variance_convention="paper")(a, b)
    assert torch.allclose(paper.variance, 2 * released.variance, rtol=1e-12)
    assert torch.allclose(paper.loss - released.loss, 25.0 * released.variance, rtol=1e-12)


def test_custom_coefficients_weight_the_unweighted_terms():
    a, b = _pair(8, 16, seed=2)
    out = VICRegLoss(sim_coeff=3.0, std_coeff=5.0, cov_coeff=7.0, gamma=0.5, eps=1e-3)(a, b)
    ref = reference_vicreg(a, b, sim=3.0, std=5.0, cov=7.0, gamma=0.5, eps=1e-3)
    assert torch.allclose(out.loss, ref[0], rtol=1e-12)


def test_plain_functions_are_the_terms():
    a, b = _pair(12, 20, seed=3)
    ref = reference_vicreg(a, b, paper=True)
    assert torch.allclose(invariance_loss(a, b), ref[1], rtol=1e-12)
    assert torch.allclose(variance_loss(a) + variance_loss(b), ref[2], rtol=1e-12)
    assert torch.allclose(covariance_loss(a, "gram") + covariance_loss(b, "gram"), ref[3], rtol=1e-10)
    assert torch.allclose(covariance_loss(a, "covariance") + covariance_loss(b, "covariance"), ref[3], rtol=1e-10)


def test_auto_form_switches_at_n_equals_d():
    assert resolve_form("auto", 255, 256) == "gram"
    assert resolve_form("auto", 256, 256) == "covariance"
    assert resolve_form("auto", 257, 256) == "covariance"
    with pytest.raises(ValueError, match="covariance_form"):
        resolve_form("dense", 2, 2)


@pytest.mark.parametrize(
    "form,shape", [("gram", (5, 9)), ("covariance", (9, 5)), ("gram", (9, 5)), ("covariance", (5, 9))]
)
def test_fused_backward_is_exact(form, shape):
    z = (torch.randn(*shape, dtype=torch.float64) * 0.8).requires_grad_()  # stds on both sides of gamma

    def f(x):
        v, off, _ = FusedVarianceCovariance.apply(x, 1.0, 1e-4, form)
        return v, off

    assert torch.autograd.gradcheck(f, (z,))


@pytest.mark.parametrize("n,d", [(64, 512), (512, 64)])
def test_forms_agree_in_float32(n, d):
    a, b = _pair(n, d, seed=4, dtype=torch.float32)
    gram = VICRegLoss(covariance_form="gram")(a, b).covariance
    cov = VICRegLoss(covariance_form="covariance")(a, b).covariance
    ref = reference_vicreg(a.double(), b.double())[3]
    assert abs(gram.item() - ref.item()) / ref.item() < 1e-4
    assert abs(cov.item() - ref.item()) / ref.item() < 1e-4


def _nearly_uncorrelated(n, d, seed):
    """[n, d] float32 embeddings whose covariance is nearly diagonal: k = min(d, n/2) columns
    with exactly zero sample covariance and unequal scales (stds halving from 1 down to 0.01),
    plus a shared component that gives every pair of them correlation 1e-3; when d > k (only
    n-1 columns can be uncorrelated) the other columns are noise of std 1e-4.

    Σ_{i≠j} C_ij² is then about 10⁻⁶ of Σ var² (κ ≈ 10⁶): a float32 Gram form that subtracts
    the two loses about 6 of its 7 digits.
    """
    g = torch.Generator().manual_seed(seed)
    k = min(d, n // 2)
    x = torch.randn(n, k + 1, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(x - x.mean(dim=0))
    q = q * (n - 1) ** 0.5  # orthogonal, centred columns of unit variance
    std = (0.5 ** torch.arange(k, dtype=torch.float64)).clamp_min(1e-2)[torch.randperm(k, generator=g)]
    z = (q[:, :k] + 1e-3**0.5 * q[:, k:]) * std
    if d > k:
        z = torch.cat([z, 1e-4 * torch.randn(n, d - k, generator=g, dtype=torch.float64)], dim=1)
    return (z + 0.3).float()


def _relative_error(got, want):
    return ((got.double() - want).norm() / want.norm()).item()


@pytest.mark.parametrize("n,d", [(256, 2048), (2048, 256)])
@pytest.mark.parametrize("form", ["gram", "covariance"])
def test_float32_covariance_term_when_nearly_uncorrelated(n, d, form):
    a = _nearly_uncorrelated(n, d, seed=0).requires_grad_()
    b = _nearly_uncorrelated(n, d, seed=1).requires_grad_()
    got = VICRegLoss(covariance_form=form)(a, b).covariance
    a64, b64 = a.detach().double().requires_grad_(), b.detach().double().requires_grad_()
    want = reference_vicreg(a64, b64)[3]
    assert abs(got.item() - want.item()) / want.item() < 1e-2
    # The gradient of the Gram form still subtracts (n-1)·Zc·diag(var) from M·Zc in float32,
    # but those differ only by a factor of about √κ ≈ 10³, so it keeps about 4 of float32's 7
    # digits (measured ≤ 6e-4 on such data; the covariance form ≤ 3e-5). Half a percent
    # leaves margin for other BLAS blockings.
    for g, g_ref in zip(torch.autograd.grad(got, (a, b)), torch.autograd.grad(want, (a64, b64))):
        assert _relative_error(g, g_ref) < 5e-3


def test_float32_gram_form_needs_no_float64_on_ordinary_batches(monkeypatch):
    # The float64 Gram is for nearly uncorrelated batches only; an ordinary batch with n < d
    # cancels next to nothing (C has rank < n, so with comparable variances its off-diagonal
    # part cannot be small next to its diagonal).
    def fail(*args):
        raise AssertionError("the float64 Gram was used")

    monkeypatch.setattr(_numerics, "gram_shard_terms_float64", fail)
    a, b = _pair(256, 2048, seed=7, dtype=torch.float32)
    VICRegLoss(covariance_form="gram")(a, b).loss.backward()


def _sharded_worker(rank, world, init, out):
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    a, b = _nearly_uncorrelated(256, 2048, seed=0), _nearly_uncorrelated(256, 2048, seed=1)
    rows = slice(rank * 256 // world, (rank + 1) * 256 // world)
    a, b = a[rows].requires_grad_(), b[rows].requires_grad_()
    cov = VICRegLoss(covariance_form="gram")(a, b).covariance
    grads = []
    for g in torch.autograd.grad(cov, (a, b)):  # every process's loss sends each row a gradient
        parts = [torch.empty_like(g) for _ in range(world)]
        torch.distributed.all_gather(parts, g)
        grads.append(torch.cat(parts) / world)  # the DDP average
    if rank == 0:
        torch.save({"covariance": cov.detach(), "grads": grads}, out)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


def test_float32_sharded_gram_form_when_nearly_uncorrelated(tmp_path):
    # Each process's share of the Gram form is as large as the terms it subtracts; the shares
    # must be summed before subtracting, and the float64 fallback taken on every process.
    out = tmp_path / "out.pt"
    torch.multiprocessing.spawn(_sharded_worker, args=(2, f"file://{tmp_path / 'pg'}", str(out)), nprocs=2)
    got = torch.load(out)
    a64 = _nearly_uncorrelated(256, 2048, seed=0).double().requires_grad_()
    b64 = _nearly_uncorrelated(256, 2048, seed=1).double().requires_grad_()
    want = reference_vicreg(a64, b64)[3]
    assert abs(got["covariance"].item() - want.item()) / want.item() < 1e-2
    for g, g_ref in zip(got["grads"], torch.autograd.grad(want, (a64, b64))):
        assert _relative_error(g, g_ref) < 5e-3


def test_statistics_match_direct_computation():
    a, b = _pair(40, 30, seed=6)
    out = VICRegLoss()(a, b)
    std = torch.sqrt(a.detach().var(dim=0) + 1e-4)
    assert torch.allclose(out.stats["a/std_mean"], std.mean())
    assert torch.allclose(out.stats["a/std_min"], std.min())
    assert out.stats["a/std_below_gamma"].item() == pytest.approx((std < 1.0).double().mean().item())
    c = torch.cov(a.detach().T)
    rms = off_diagonal(c).pow(2).mean().sqrt()
    assert torch.allclose(out.stats["a/cov_offdiag_rms"], rms, rtol=1e-8)
    assert set(out.metrics()) >= {"loss", "invariance", "variance", "covariance", "b/std_mean"}


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"variance_convention": "sum"}, "^variance_convention must be one of"),
        ({"covariance_form": "fast"}, "^covariance_form must be one of"),
        ({"gamma": 0.0}, "^gamma must be > 0"),
        ({"eps": 0.0}, "^eps must be > 0"),
        ({"sim_coeff": -1.0}, "^sim_coeff must be >= 0"),
        ({"cov_coeff": [1.0, -2.0]}, "^cov_coeff must be >= 0"),
    ],
)
def test_bad_options_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VICRegLoss(**kwargs)


# --- per-branch coefficients ------------------------------------------------------------------


def _reference_per_branch(a, b, mu, nu, paper=False):
    """μ_a·v(a) + μ_b·v(b) (halved unless paper) + ν_a·c(a) + ν_b·c(b) + 25·s, from the
    reference's one-branch terms (its variance and covariance of (a, a) are 2·v(a) and 2·c(a))."""
    _, s, _, _ = reference_vicreg(a, b)
    v_a, c_a = (t / 2 for t in reference_vicreg(a, a, paper=True)[2:])
    v_b, c_b = (t / 2 for t in reference_vicreg(b, b, paper=True)[2:])
    variance = mu[0] * v_a + mu[1] * v_b
    if not paper:
        variance = variance / 2
    return 25.0 * s + variance + nu[0] * c_a + nu[1] * c_b


@pytest.mark.parametrize("convention", ["released", "paper"])
@pytest.mark.parametrize("form", ["gram", "covariance"])
def test_per_branch_coefficients_match_reference(convention, form):
    a, b = _pair(12, 20, seed=8)
    loss_fn = VICRegLoss(std_coeff=[25, 10], cov_coeff=[1.0, 4.0], variance_convention=convention, covariance_form=form)
    out = loss_fn(a, b)
    ref = _reference_per_branch(a, b, (25.0, 10.0), (1.0, 4.0), paper=convention == "paper")
    assert abs(out.loss.item() - ref.item()) <= 1e-10 * ref.item()
    for x, y in zip(torch.autograd.grad(out.loss, (a, b)), torch.autograd.grad(ref, (a, b))):
        assert torch.allclose(x, y, rtol=1e-10, atol=1e-13)
    # The unweighted terms are the same as without per-branch weights; each side's are in stats.
    plain = VICRegLoss(covariance_form=form, variance_convention=convention)(a, b)
    assert torch.allclose(out.variance, plain.variance, rtol=1e-14)
    assert torch.allclose(out.stats["a/covariance"] + out.stats["b/covariance"], plain.covariance, rtol=1e-12)


def test_per_branch_with_one_list_and_one_number():
    a, b = _pair(12, 20, seed=9)
    out = VICRegLoss(std_coeff=25.0, cov_coeff=(2.0, 0.5))(a, b)
    ref = _reference_per_branch(a, b, (25.0, 25.0), (2.0, 0.5))
    assert abs(out.loss.item() - ref.item()) <= 1e-10 * ref.item()


def test_equal_per_branch_coefficients_equal_the_scalar():
    a, b = _pair(16, 8, seed=10)
    equal = VICRegLoss(std_coeff=[25, 25], cov_coeff=[1, 1])(a, b).loss
    assert torch.allclose(equal, VICRegLoss()(a, b).loss, rtol=1e-14)


def test_default_coefficients_stay_bitwise_the_expression_of_before():
    # The default path is λ·s + μ·variance + ν·covariance, in that order, untouched.
    a, b = _pair(16, 32, seed=11, dtype=torch.float32)
    out = VICRegLoss()(a, b)
    assert torch.equal(out.loss, 25.0 * out.invariance + 25.0 * out.variance + 1.0 * out.covariance)
    assert "a/variance" not in out.stats


@pytest.mark.parametrize("value", [[1.0], [1.0, 2.0, 3.0], "25", [1.0, "x"], True])
def test_bad_per_branch_coefficients_rejected(value):
    with pytest.raises(ValueError, match="^std_coeff must be a number or a 2-item list"):
        VICRegLoss(std_coeff=value)


def test_per_branch_coefficients_from_a_command_line_override():
    # The override parser load_config uses (OmegaConf's dotlist) and the loss section's typing.
    from omegaconf import OmegaConf

    from multivic.config import resolve_loss
    from multivic.registry import OBJECTIVES

    given = OmegaConf.to_container(OmegaConf.from_dotlist(["loss.std_coeff=[25,10]", "loss.cov_coeff=[1,2]"]).loss)
    loss = resolve_loss(given)
    assert loss["std_coeff"] == [25, 10]
    loss_fn = OBJECTIVES.create(loss.pop("name"), **loss)
    assert loss_fn.std_coeff == (25.0, 10.0) and loss_fn.cov_coeff == (1.0, 2.0)
