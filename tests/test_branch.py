"""Branches and the joint-embedding model: shared, separate and different architectures, one path."""

import pytest
import torch
from torch import nn

from multivic import Branch, Expander, JointEmbedding, VICRegLoss, build_branch


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_shared_separate_and_different_architectures_train_through_one_api():
    torch.manual_seed(0)
    x_a, x_b = torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32)
    a = build_branch("a", "resnet18", {}, "32-16")
    shared = JointEmbedding(a, a)
    separate = JointEmbedding(build_branch("a", "resnet18", {}, "32-16"), build_branch("b", "resnet18", {}, "32-16"))
    different = JointEmbedding(
        build_branch("r18", "resnet18", {}, "32-16"), build_branch("r34", "resnet34", {}, "32-16")
    )
    assert shared.shared and list(shared.branches()) == ["a"]
    assert _count(separate) == 2 * _count(shared)
    assert list(different.branches()) == ["r18", "r34"]
    for model in (shared, separate, different):
        loss, metrics = model(x_a, x_b)
        loss.backward()
        assert loss.dtype == torch.float32 and loss.dim() == 0
        assert {"loss", "invariance", "variance", "covariance", "a/std_mean", "b/std_mean"} <= set(metrics)
        assert all(not v.requires_grad for v in metrics.values())
        assert all(p.grad is not None for p in model.parameters())


def test_user_modules_plug_in_without_the_registry():
    class Tiny(nn.Module):
        modality = "vector"
        out_dim = 6

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 6)

        def forward(self, x):
            return self.lin(x)

    model = JointEmbedding(
        Branch("u", Tiny(), Expander(6, "8-8")), Branch("v", Tiny(), Expander(6, "8-8")), VICRegLoss()
    )
    loss, _ = model(torch.randn(5, 3), torch.randn(5, 3))
    assert torch.isfinite(loss)


def test_mismatched_widths_and_names_are_refused():
    with pytest.raises(ValueError, match="one width"):
        JointEmbedding(build_branch("a", "resnet18", {}, "16"), build_branch("b", "resnet18", {}, "32"))
    with pytest.raises(ValueError, match="distinct names"):
        JointEmbedding(build_branch("a", "resnet18", {}, "16"), build_branch("a", "resnet18", {}, "16"))
