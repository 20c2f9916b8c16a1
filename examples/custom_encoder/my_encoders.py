"""A user's own encoder, registered two ways: with the decorator and as a plain factory.

Way 1 — the decorator: list this file under `imports:` in a recipe (decorator_recipe.yaml),
then name the encoder "small_cnn".
Way 2 — an import path: name "examples.custom_encoder.my_encoders:plain_small_cnn" as the
encoder (import_path_recipe.yaml); nothing needs registering, the module declares `modality`.
"""

from torch import Tensor, nn

from multivic import register_encoder


class SmallCNN(nn.Module):
    """Three conv blocks and global pooling. Input [B, 3, H, W], output [B, width * 4]."""

    modality = "image"

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, width * 2, width * 4):
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_dim = width * 4

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


@register_encoder("small_cnn", modality="image")
def small_cnn(width: int = 32) -> SmallCNN:
    """A small CNN for 16-64 px images (example of a user encoder)."""
    return SmallCNN(width)


def plain_small_cnn(width: int = 16) -> SmallCNN:
    """The same network as a plain factory, for the import-path way."""
    return SmallCNN(width)
