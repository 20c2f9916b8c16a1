"""The encoder registry, and the contract every registered encoder must meet."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import multivic
from multivic.errors import RegistryError

# Every registered encoder must accept its modality's example batch (the modality registry's own).
from multivic.modalities import create_modality
from multivic.registry import ENCODERS, create_encoder, encoder_spec, list_encoders, register_encoder


def tiny_input(modality: str):
    return create_modality(modality).example_batch(2)


# Arguments that make an encoder fit the tiny input (ViTs fix their image size).
TINY_KWARGS = {name: {"image_size": 32, "patch_size": 8} for name in ("vit_tiny", "vit_small", "vit_base")}
# Family members and import paths are not listed by name: walk a representative of each too.
EXTRA = ["timm:resnet18", "timm:convnext_atto", "multivic.encoders.resnet:resnet18"]


@pytest.mark.parametrize("name", list_encoders() + EXTRA)
def test_every_registered_encoder_meets_the_contract(name, tmp_path):
    torch.manual_seed(0)
    kwargs = TINY_KWARGS.get(name, {})
    encoder = create_encoder(name, **kwargs)
    assert isinstance(encoder.modality, str) and encoder.modality
    if ":" not in name:
        assert encoder.modality == encoder_spec(name).meta["modality"]
    x = tiny_input(encoder.modality)
    encoder.train()
    y = encoder(x)
    assert y.shape == (2, encoder.out_dim)
    assert torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    missing = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reaches {missing[:5]}"

    # Save/load round trip: a fresh instance with the saved weights gives identical outputs.
    encoder.eval()
    with torch.no_grad():
        expected = encoder(x)
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(tmp_path / "w.safetensors"))
    torch.manual_seed(1)
    clone = create_encoder(name, **kwargs)
    clone.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    clone.eval()
    with torch.no_grad():
        assert torch.equal(clone(x), expected)


def test_builtin_resnets_and_options():
    assert {"resnet18", "resnet34", "resnet50"} <= set(list_encoders("image"))
    assert create_encoder("resnet50").out_dim == 2048
    small = create_encoder("resnet18", small_stem=True)
    assert small.net.conv1.kernel_size == (3, 3) and isinstance(small.net.maxpool, nn.Identity)
    zero = create_encoder("resnet18", zero_init_residual=True)
    assert torch.count_nonzero(zero.net.layer1[0].bn2.weight) == 0
    plain = create_encoder("resnet18", zero_init_residual=False)
    assert torch.count_nonzero(plain.net.layer1[0].bn2.weight) > 0


def test_unknown_name_lists_known_ones():
    with pytest.raises(
        RegistryError, match=r"unknown encoder 'resnet81'.*Did you mean resnet18.*Known encoders: .*resnet50"
    ):
        create_encoder("resnet81")


def test_unknown_argument_lists_accepted_ones():
    with pytest.raises(RegistryError, match=r"does not take 'width'.*small_stem"):
        create_encoder("resnet18", width=3)


def test_user_registration_and_duplicates():
    @register_encoder("test_tiny_mlp", modality="vector")
    def tiny(width: int = 4) -> nn.Module:
        m = nn.Linear(3, width)
        m.out_dim = width
        return m

    try:
        assert "test_tiny_mlp" in list_encoders("vector")
        assert "test_tiny_mlp" not in list_encoders("image")
        enc = multivic.create_encoder("test_tiny_mlp", width=5)
        assert enc.out_dim == 5 and enc.modality == "vector"
        register_encoder("test_tiny_mlp", modality="vector")(tiny)  # the same definition again: fine

        def other() -> nn.Module:
            return tiny()

        with pytest.raises(RegistryError, match="already registered"):
            register_encoder("test_tiny_mlp", modality="vector")(other)
    finally:
        ENCODERS._entries.pop("test_tiny_mlp", None)


def test_factory_breaking_the_contract_is_reported():
    @register_encoder("test_no_width", modality="vector")
    def no_width() -> nn.Module:
        return nn.Linear(2, 2)

    try:
        with pytest.raises(RegistryError, match="out_dim"):
            create_encoder("test_no_width")
    finally:
        ENCODERS._entries.pop("test_no_width", None)
