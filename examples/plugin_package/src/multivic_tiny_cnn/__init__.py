"""An encoder shipped by a separate package through the `multivic.encoders` entry point.

The factory does not import multivic: the entry point's name is the encoder name, and the
factory's `modality` attribute says what it reads.
"""

from torch import Tensor, nn


class TinyCNN(nn.Module):
    """Two conv layers and pooling. Input [B, 3, H, W], output [B, 64]."""

    modality = "image"
    out_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def tiny_cnn() -> TinyCNN:
    """A tiny CNN (example plugin)."""
    return TinyCNN()


tiny_cnn.modality = "image"
