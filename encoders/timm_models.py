"""Every timm image model as an encoder: ``timm:<model name>``, plus ViT shortcuts.

Models are created without a classifier (``num_classes=0``), so they return pooled features
[B, num_features]; weights are random unless ``checkpoint`` names a local file (safetensors
or a PyTorch state dict). Nothing is ever downloaded.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from multivic.errors import RegistryError
from multivic.registry import register_encoder, register_encoder_family


class TimmEncoder(nn.Module):
    """A timm model's pooled features. Input [B, 3, H, W], output [B, out_dim]."""

    modality = "image"

    def __init__(self, model: nn.Module, model_name: str) -> None:
        super().__init__()
        self.model = model
        self.model_name = model_name
        self.out_dim: int = int(model.num_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the model's blocks in the backward pass (timm's own checkpointing).

        Raises ValueError for the few timm models that have none."""
        try:
            self.model.set_grad_checkpointing(enable)
        except (AssertionError, NotImplementedError, AttributeError) as exc:
            raise ValueError(
                f"timm model {self.model_name!r} has no gradient checkpointing ({exc or 'not supported'})"
            ) from None


def _unknown_model(name: str) -> RegistryError:
    import timm

    names = timm.list_models()
    close = difflib.get_close_matches(name, names, n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
    return RegistryError(f"timm has no model {name!r}{hint} (timm.list_models() lists {len(names)})")


def _load_checkpoint(model: nn.Module, path: str | Path, name: str) -> None:
    path = Path(path).expanduser()
    if not path.is_file():
        raise RegistryError(
            f"encoder timm:{name}: checkpoint {path} not found (give a local .safetensors or .pth file)"
        )
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("state_dict", "model"):  # common wrappers around the weights
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own}  # drop classifier heads and extras
    missing = sorted(set(own) - set(state))
    if missing:
        raise RegistryError(
            f"encoder timm:{name}: checkpoint {path} lacks {len(missing)} weights of the model, e.g. {missing[:3]}"
        )
    model.load_state_dict(state)


@register_encoder_family("timm:", modality="image")
def timm_encoder(
    model_name: str,
    image_size: int | None = None,
    checkpoint: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> TimmEncoder:
    """Any timm model: ``timm:<model name>``, random init or a local checkpoint, no classifier.

    Args:
        model_name: a name from ``timm.list_models()``.
        image_size: input size for models that fix it (ViTs); CNNs take any size and ignore it.
        checkpoint: path of a local weights file to start from.
        model_kwargs: further keyword arguments of the timm model (depth, patch_size, drop_path_rate, ...).
    """
    import timm

    if not timm.is_model(model_name):
        raise _unknown_model(model_name)
    kwargs: dict[str, Any] = dict(model_kwargs or {})
    try:
        model = timm.create_model(
            model_name, pretrained=False, num_classes=0, **({"img_size": image_size} if image_size else {}), **kwargs
        )
    except TypeError as exc:
        if image_size and "img_size" in str(exc):  # a CNN: it takes images of any size
            model = timm.create_model(model_name, pretrained=False, num_classes=0, **kwargs)
        else:
            raise RegistryError(f"encoder timm:{model_name}: {exc}") from None
    if checkpoint:
        _load_checkpoint(model, checkpoint, model_name)
    return TimmEncoder(model, model_name)


def _vit(
    variant: str, image_size: int, patch_size: int, checkpoint: str | None, drop_path_rate: float, depth: int | None
) -> TimmEncoder:
    kwargs: dict[str, Any] = {"patch_size": patch_size, "drop_path_rate": drop_path_rate}
    if depth is not None:
        kwargs["depth"] = depth
    return timm_encoder(f"vit_{variant}_patch16_224", image_size=image_size, checkpoint=checkpoint, model_kwargs=kwargs)


@register_encoder("vit_tiny", modality="image")
def vit_tiny(
    image_size: int = 224,
    patch_size: int = 16,
    checkpoint: str | None = None,
    drop_path_rate: float = 0.0,
    depth: int | None = None,
) -> TimmEncoder:
    """ViT-Ti (timm), 192-d class token."""
    return _vit("tiny", image_size, patch_size, checkpoint, drop_path_rate, depth)


@register_encoder("vit_small", modality="image")
def vit_small(
    image_size: int = 224,
    patch_size: int = 16,
    checkpoint: str | None = None,
    drop_path_rate: float = 0.0,
    depth: int | None = None,
) -> TimmEncoder:
    """ViT-S (timm), 384-d class token; the paper's ViT-S/16 at the defaults."""
    return _vit("small", image_size, patch_size, checkpoint, drop_path_rate, depth)


@register_encoder("vit_base", modality="image")
def vit_base(
    image_size: int = 224,
    patch_size: int = 16,
    checkpoint: str | None = None,
    drop_path_rate: float = 0.0,
    depth: int | None = None,
) -> TimmEncoder:
    """ViT-B (timm), 768-d class token."""
    return _vit("base", image_size, patch_size, checkpoint, drop_path_rate, depth)
