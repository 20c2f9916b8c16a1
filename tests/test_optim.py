import copy
import math

import pytest
import torch
from torch import nn

from multivic.optim import LARS, build_optimizer, split_decay_groups, warmup_cosine

ETA = 0.001  # the released trust coefficient


def test_biases_and_norms_are_excluded_from_decay_and_adaptation():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2, bias=False))
    groups = split_decay_groups(model, 1e-6)
    decay = {id(p) for p in groups[0]["params"]}
    assert decay == {id(model[0].weight), id(model[2].weight)}
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 3
    opt = build_optimizer("lars", groups, lr=0.1)
    assert isinstance(opt, LARS)
    assert opt.param_groups[0]["lars_adapt"] is True and opt.param_groups[1]["lars_adapt"] is False


def _small_model() -> nn.Module:
    # float64 so the comparison with the float64 reference below can be tight enough to tell
    # the released trust ratio η‖w‖/‖g + wd·w‖ from timm's η‖w‖/(‖g‖ + wd‖w‖ + eps).
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 3)).double()


def _backward(model: nn.Module, x: torch.Tensor) -> None:
    model.zero_grad(set_to_none=True)
    model(x).pow(2).sum().backward()


def _reference_update(w: torch.Tensor, g: torch.Tensor, wd: float, adapt: bool) -> torch.Tensor:
    """The released LARS's per-step update u (before momentum), independently in float64."""
    w, g = w.detach().double(), g.detach().double()
    if not adapt:
        return g  # biases and norms: no decay, no trust ratio
    u = g + wd * w
    return ETA * w.norm() / u.norm() * u


def _assert_step(actual: torch.Tensor, expected: torch.Tensor) -> None:
    # before - after loses ~1e-16·|w| to cancellation, which is ~1e-12 of a step of size ~η·|w|;
    # 1e-9 still separates the two trust-ratio formulas, which differ by ~wd = 1e-6 here.
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-12 * expected.abs().max().item())


@pytest.mark.parametrize("wd", [0.0, 1e-6])
def test_lars_step_scales_weights_by_trust_ratio(wd):
    # With wd 0 timm's Lars (always_adapt=False) skipped the trust ratio in every group: plain SGD.
    model = _small_model()
    lr = 0.5
    opt = build_optimizer("lars", split_decay_groups(model, wd), lr=lr, momentum=0.9)
    x = torch.randn(6, 5, dtype=torch.float64)
    _backward(model, x)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = {n: lr * _reference_update(p, p.grad, wd, adapt=p.ndim > 1) for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        _assert_step(before[n] - p.detach(), expected[n])
    # The trust ratio is far from 1 here, so an unadapted (SGD) weight step could not pass above.
    assert (before["0.weight"] - model[0].weight.detach()).norm() < 0.1 * lr * model[0].weight.grad.norm()


@pytest.mark.parametrize("wd", [0.0, 1e-6])
def test_lars_momentum_over_two_steps(wd):
    model = _small_model()
    lr, mom = 0.5, 0.9
    opt = build_optimizer("lars", split_decay_groups(model, wd), lr=lr, momentum=mom)
    x = torch.randn(6, 5, dtype=torch.float64)
    buf: dict[str, torch.Tensor] = {}
    for _ in range(2):
        _backward(model, x)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        for n, p in model.named_parameters():
            u = _reference_update(p, p.grad, wd, adapt=p.ndim > 1)
            buf[n] = mom * buf[n] + u if n in buf else u  # released: mu = 0, then mu = m·mu + u
        opt.step()
        for n, p in model.named_parameters():
            _assert_step(before[n] - p.detach(), lr * buf[n])


def test_lars_groups_without_the_key_adapt_matrices_only():
    # E.g. a group restored from an optimiser state saved by timm's Lars: the released ndim filter.
    model = _small_model()
    opt = LARS(model.parameters(), lr=0.5, momentum=0.0)
    _backward(model, torch.randn(6, 5, dtype=torch.float64))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        expected = 0.5 * _reference_update(before[n], grads[n], 0.0, adapt=p.ndim > 1)
        _assert_step(before[n] - p.detach(), expected)


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(3, 3)
    model = nn.ModuleList([lin, lin])
    groups = split_decay_groups(model, 0.1)
    assert sum(len(g["params"]) for g in groups) == 2


def test_warmup_then_cosine():
    total, warm = 100, 10
    assert warmup_cosine(0, total, warm, 0.001) == pytest.approx(0.1)
    assert warmup_cosine(9, total, warm, 0.001) == pytest.approx(1.0)
    assert warmup_cosine(10, total, warm, 0.001) == pytest.approx(1.0)
    mid = 0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * 45 / 90))
    assert warmup_cosine(55, total, warm, 0.001) == pytest.approx(mid)
    assert warmup_cosine(100, total, warm, 0.001) == pytest.approx(0.001)


def test_lars_resumes_an_optimizer_state_saved_by_timm_lars():
    # Checkpoints written before this LARS hold timm's groups (no eta, no lars_adapt) and its
    # momentum_buffer; they must resume with the momentum and the released adaptation.
    from timm.optim import Lars

    model = _small_model()
    x = torch.randn(6, 5, dtype=torch.float64)
    groups = [{k: v for k, v in g.items() if k != "lars_adapt"} for g in split_decay_groups(model, 1e-6)]
    old = Lars(groups, lr=0.5, momentum=0.9, trust_coeff=0.001, always_adapt=False)
    _backward(model, x)
    old.step()
    bufs = {n: old.state[p]["momentum_buffer"].clone() for n, p in model.named_parameters()}
    opt = build_optimizer("lars", split_decay_groups(model, 1e-6), lr=0.5, momentum=0.9)
    opt.load_state_dict(old.state_dict())
    _backward(model, x)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = {
        n: 0.5 * (0.9 * bufs[n] + _reference_update(p, p.grad, 1e-6 if p.ndim > 1 else 0.0, p.ndim > 1))
        for n, p in model.named_parameters()
    }
    opt.step()
    for n, p in model.named_parameters():
        _assert_step(before[n] - p.detach(), expected[n])


def test_lars_zero_weight_gets_trust_ratio_one():
    # A zero-initialised matrix would otherwise never move (η·0/‖u‖ = 0): the released where(‖w‖>0).
    lin = nn.Linear(3, 2, bias=False).double()
    nn.init.zeros_(lin.weight)
    opt = build_optimizer("lars", split_decay_groups(lin, 0.0), lr=0.5, momentum=0.9)
    lin(torch.randn(4, 3, dtype=torch.float64)).sum().backward()
    opt.step()
    torch.testing.assert_close(-lin.weight.detach(), 0.5 * lin.weight.grad)


def test_adamw_option():
    lin = nn.Linear(2, 2)
    opt = build_optimizer("adamw", split_decay_groups(lin, 0.05), lr=1e-3, betas=(0.9, 0.95))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.95)
    # The LARS-only lars_adapt key rides along in the groups and AdamW steps regardless of it.
    lin(torch.randn(3, 2)).sum().backward()
    before = lin.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, lin.weight.detach())


def test_adamw_multi_tensor_path_is_bitwise_torchs_per_parameter_adamw():
    """build_optimizer's AdamW runs the multi-tensor (foreach) kernels on CPU for speed; its
    weights after several steps equal PyTorch's per-parameter AdamW (foreach=False) exactly."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    models = [base, copy.deepcopy(base)]
    ours = build_optimizer("adamw", split_decay_groups(models[0], 0.05), lr=1e-2)
    assert ours.defaults["foreach"] is True
    reference = torch.optim.AdamW(
        [{k: v for k, v in g.items() if k != "lars_adapt"} for g in split_decay_groups(models[1], 0.05)],
        lr=1e-2,
        foreach=False,
    )
    x = torch.randn(16, 3, 8, 8)
    for _ in range(5):
        for model, opt in zip(models, (ours, reference)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
