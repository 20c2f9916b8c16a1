"""The expander: the MLP between an encoder's representation and the loss.

A spec string lists the widths of its layers, as in the released code's ``--mlp``:
"8192-8192-8192" on a 2048-wide encoder gives
Linear(2048, 8192)-BN-ReLU, Linear(8192, 8192)-BN-ReLU, Linear(8192, 8192, bias=False).
"""

from __future__ import annotations

from torch import Tensor, nn

from multivic.errors import ConfigError


def parse_expander_spec(spec: str) -> list[int]:
    """Widths in a spec such as "8192-8192-8192"; an empty spec or "none" means no expander."""
    text = str(spec).strip()
    if text.lower() in ("", "none", "identity"):
        return []
    parts = text.split("-")
    try:
        widths = [int(p) for p in parts]
    except ValueError:
        raise ConfigError(
            f"bad expander spec {spec!r}: write layer widths joined by '-', e.g. '8192-8192-8192', or 'none'"
        ) from None
    if any(w <= 0 for w in widths):
        raise ConfigError(f"bad expander spec {spec!r}: every width must be a positive integer")
    return widths


class Expander(nn.Sequential):
    """Linear-BatchNorm-ReLU blocks, then a last Linear without bias.

    Input [B, in_dim], output [B, out_dim] with out_dim the spec's last width (in_dim when
    the spec is empty, in which case the expander is the identity).
    """

    def __init__(self, in_dim: int, spec: str) -> None:
        widths = parse_expander_spec(spec)
        layers: list[nn.Module] = []
        dims = [in_dim, *widths]
        for i in range(len(widths) - 1):
            layers += [nn.Linear(dims[i], dims[i + 1]), nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)]
        if widths:
            layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
        super().__init__(*layers)
        self.in_dim = in_dim
        self.out_dim = dims[-1]
        self.spec = str(spec)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) if len(self) else x
