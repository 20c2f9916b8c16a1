import pytest
import torch
from torch import nn

from multivic.errors import ConfigError
from multivic.expander import Expander, parse_expander_spec


def test_parse_specs():
    assert parse_expander_spec("8192-8192-8192") == [8192, 8192, 8192]
    assert parse_expander_spec(" 64 ") == [64]
    assert parse_expander_spec("none") == []
    assert parse_expander_spec("") == []


@pytest.mark.parametrize("spec", ["abc", "8192--8192", "0-8", "-1", "8192-x", "1.5-2"])
def test_bad_specs_are_config_errors(spec):
    with pytest.raises(ConfigError, match="expander spec"):
        parse_expander_spec(spec)


def test_layers_follow_the_released_code():
    e = Expander(32, "64-64-16")
    kinds = [type(m) for m in e]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert e[0].in_features == 32 and e[3].in_features == 64 and e[6].out_features == 16
    assert e[0].bias is not None and e[6].bias is None
    assert e(torch.randn(4, 32)).shape == (4, 16) and e.out_dim == 16


def test_single_width_is_one_linear_and_empty_is_identity():
    one = Expander(8, "5")
    assert len(one) == 1 and one[0].bias is None
    ident = Expander(8, "none")
    x = torch.randn(3, 8)
    assert ident.out_dim == 8 and torch.equal(ident(x), x)
