"""What every registered objective does alike, tested once over all of them.

The parametrization is the objective registry itself: a new objective, built-in or registered
by a test, is tested here by registering it. ``toy_mse`` (tests/helpers/toy_objective.py)
is one registered by a test, with no test of its own; it is registered while these tests run
only. Each objective's own formula is tested in its own file, against tests/helpers/objective_reference.py.
"""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from multivic.errors import NonFiniteLossError
from multivic.objectives import ObjectiveOutput
from multivic.registry import OBJECTIVES
from tests.helpers import toy_objective

SHAPES = [(8, 16), (16, 8)]  # n < d and n > d: VICReg's and Barlow Twins' two covariance forms


def _float_options(name: str) -> list[str]:
    """The keyword arguments of objective ``name`` whose default is a float."""
    params = inspect.signature(OBJECTIVES.get(name).factory).parameters.values()
    return [p.name for p in params if type(p.default) is float]


with toy_objective.registered():
    NAMES = OBJECTIVES.names()
    FLOAT_OPTIONS = [(name, option) for name in NAMES for option in _float_options(name)]
WEIGHTS = [(name, option) for name, option in FLOAT_OPTIONS if option.endswith("_coeff")]


@pytest.fixture(autouse=True)
def _toy_registered():
    with toy_objective.registered():
        yield


def _pair(n: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Two related [n, d] batches that require grad."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=dtype)
    b = 0.5 * a + torch.randn(n, d, generator=g, dtype=dtype)  # related, yet with hinge violations
    return a.requires_grad_(), b.requires_grad_()


def test_the_toy_objective_is_among_those_tested():
    assert toy_objective.NAME in NAMES
    assert {"vicreg", "barlow_twins", "infonce", "vsepp"} <= set(NAMES)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_returns_the_one_result_type(name, n, d):
    out = OBJECTIVES.create(name)(*_pair(n, d))
    assert isinstance(out, ObjectiveOutput)
    assert out.loss.dim() == 0 and out.loss.requires_grad and bool(torch.isfinite(out.loss))
    assert out.terms and all(t.dim() == 0 and t.requires_grad for t in out.terms.values())
    assert all(getattr(out, term) is value for term, value in out.terms.items())
    metrics = out.metrics()
    assert {"loss", *out.terms} <= set(metrics)
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())
    assert torch.equal(metrics["loss"], out.loss.detach())


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_inputs_and_the_objective_parameters(name, n, d):
    objective = OBJECTIVES.create(name)
    a, b = _pair(n, d)
    objective(a, b).loss.backward()
    for z in (a, b):
        assert z.grad is not None and bool(torch.isfinite(z.grad).all())
    assert a.grad.abs().sum() + b.grad.abs().sum() > 0
    assert all(p.grad is not None for p in objective.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_the_same_inputs_give_the_same_bits(name):
    runs = []
    for _ in range(2):
        a, b = _pair(12, 20)
        out = OBJECTIVES.create(name)(a, b)
        runs.append((out.loss.detach(), *torch.autograd.grad(out.loss, (a, b))))
    assert all(torch.equal(x, y) for x, y in zip(*runs))


@pytest.mark.parametrize("name", NAMES)
def test_computed_in_float32_whatever_the_model_ran_in(name):
    a, b = _pair(12, 20)
    a_low, b_low = a.detach().bfloat16().requires_grad_(), b.detach().bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = OBJECTIVES.create(name)(a_low, b_low)
    assert out.loss.dtype == torch.float32 and all(t.dtype == torch.float32 for t in out.terms.values())
    # Bitwise the loss of the same numbers upcast by hand: nothing ran in bfloat16.
    assert torch.equal(out.loss, OBJECTIVES.create(name)(a_low.detach().float(), b_low.detach().float()).loss)
    out.loss.backward()
    assert a_low.grad is not None and a_low.grad.dtype == torch.bfloat16
    # float64 stays float64.
    assert OBJECTIVES.create(name).double()(a.detach().double(), b.detach().double()).loss.dtype == torch.float64


@pytest.mark.parametrize(
    "a,b,message",
    [
        (torch.randn(4, 8), torch.randn(4, 9), "same shape"),
        (torch.randn(8), torch.randn(8), "2-D"),
        (torch.randn(4, 8, 2), torch.randn(4, 8, 2), "2-D"),
        (torch.randint(0, 3, (4, 8)), torch.randint(0, 3, (4, 8)), "floating-point"),
        (torch.randn(1, 8), torch.randn(1, 8), "at least 2 rows"),
        (torch.randn(0, 8), torch.randn(0, 8), "at least 2 rows"),
    ],
    ids=["shapes-differ", "1-D", "3-D", "integer", "one-row", "no-rows"],
)
@pytest.mark.parametrize("name", NAMES)
def test_bad_input_names_the_problem(name, a, b, message):
    with pytest.raises(ValueError, match=message):
        OBJECTIVES.create(name)(a, b)


@pytest.mark.parametrize(
    "side,row,value", [("z_a", 1, math.inf), ("z_b", 2, math.nan)], ids=["inf-in-z_a", "nan-in-z_b"]
)
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_input_names_the_tensor_and_row(name, side, row, value):
    z = {"z_a": torch.randn(4, 8), "z_b": torch.randn(4, 8)}
    z[side][row, 3] = value
    with pytest.raises(NonFiniteLossError, match=rf"{side} holds 1 non-finite .* rows \[{row}\]"):
        OBJECTIVES.create(name)(z["z_a"], z["z_b"])


@pytest.mark.parametrize("name", NAMES)
def test_check_finite_off_lets_a_non_finite_loss_through(name):
    # The trainer turns the check off (the attribute) when it skips such steps itself.
    objective = OBJECTIVES.create(name)
    objective.check_finite = False
    a, b = torch.randn(4, 8), torch.randn(4, 8)
    a[0, 0] = math.nan
    assert not bool(torch.isfinite(objective(a, b).loss))


@pytest.mark.parametrize("name,option", FLOAT_OPTIONS, ids=[f"{n}-{o}" for n, o in FLOAT_OPTIONS])
def test_a_nan_option_is_refused_by_name(name, option):
    # The message starts with the argument's name: the config reports it as "loss.<name> ...".
    with pytest.raises(ValueError, match=rf"^{option} must be"):
        OBJECTIVES.create(name, **{option: math.nan})


@pytest.mark.parametrize("name,option", WEIGHTS, ids=[f"{n}-{o}" for n, o in WEIGHTS])
def test_a_negative_weight_is_refused_by_name(name, option):
    with pytest.raises(ValueError, match=rf"^{option} must be >= 0"):
        OBJECTIVES.create(name, **{option: -1.0})
