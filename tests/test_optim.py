import math

import pytest
import torch
from timm.optim import Lars
from torch import nn

from multivic.optim import build_optimizer, split_decay_groups, warmup_cosine


def test_biases_and_norms_are_excluded_from_decay_and_adaptation():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2, bias=False))
    groups = split_decay_groups(model, 1e-6)
    decay = {id(p) for p in groups[0]["params"]}
    assert decay == {id(model[0].weight), id(model[2].weight)}
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 3
    opt = build_optimizer("lars", groups, lr=0.1)
    assert isinstance(opt, Lars) and opt.param_groups[1]["always_adapt"] is False


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


def test_adamw_option():
    opt = build_optimizer("adamw", split_decay_groups(nn.Linear(2, 2), 0.05), lr=1e-3, betas=(0.9, 0.95))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["betas"] == (0.9, 0.95)
