"""torchvision ResNets as image encoders: pooled features, no classifier.

Options the released VICReg code and small-image work need:
- ``small_stem``: a 3×3 stride-1 first convolution and no max-pool, for 32-64 px inputs
  (CIFAR-style); the 7×7/2 stem and pool would shrink a 32 px image to 8 px before stage 1.
- ``zero_init_residual``: the last BN of each residual block starts at zero, so each block
  starts as the identity (the released code sets it).
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from multivic.registry import register_encoder


class ResNetEncoder(nn.Module):
    """A torchvision ResNet trunk. Input [B, C, H, W] images, output [B, out_dim]."""

    modality = "image"

    def __init__(
        self,
        depth: int,
        small_stem: bool = False,
        zero_init_residual: bool = True,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        builders = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34, 50: torchvision.models.resnet50}
        net = builders[depth](weights=None, zero_init_residual=zero_init_residual)
        if small_stem:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        elif in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.out_dim: int = net.fc.in_features
        net.fc = nn.Identity()
        self.net = net
        self.depth = depth

    def forward(self, x: Tensor) -> Tensor:
        return torch.flatten(self.net(x), 1)


@register_encoder("resnet18", modality="image")
def resnet18(small_stem: bool = False, zero_init_residual: bool = True, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-18 (torchvision), 512-d pooled features."""
    return ResNetEncoder(18, small_stem, zero_init_residual, in_channels)


@register_encoder("resnet34", modality="image")
def resnet34(small_stem: bool = False, zero_init_residual: bool = True, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-34 (torchvision), 512-d pooled features."""
    return ResNetEncoder(34, small_stem, zero_init_residual, in_channels)


@register_encoder("resnet50", modality="image")
def resnet50(small_stem: bool = False, zero_init_residual: bool = True, in_channels: int = 3) -> ResNetEncoder:
    """ResNet-50 (torchvision), 2048-d pooled features."""
    return ResNetEncoder(50, small_stem, zero_init_residual, in_channels)
