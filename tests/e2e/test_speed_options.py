"""The speed and memory options of ``model``: channels-last, gradient checkpointing, compile.

Each option must leave the numbers alone: the references are the same model built without the
option and given the same weights (copied through state_dict, which also checks that the
option leaves the keys unchanged).
"""

import time

import pytest
import torch
from torch import nn

from multivic import registry
from multivic.branch import Branch
from multivic.build import build_data, build_model
from multivic.config import load_config
from multivic.errors import ConfigError
from multivic.expander import Expander
from multivic.export import export_branch, load_branch


def _model(recipe, overrides, seed=0):
    cfg = load_config(recipe, overrides)
    torch.manual_seed(seed)
    return build_model(cfg, build_data(cfg))


def _views(size=16, n=8):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=g), torch.randn(n, 3, size, size, generator=g)


def _loss_and_grads(model, views):
    model.train()
    model.zero_grad(set_to_none=True)
    loss, _ = model(*views)
    loss.backward()
    return loss.detach(), {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def _assert_same(ref, other, rtol, atol):
    (loss_r, grads_r), (loss_o, grads_o) = ref, other
    torch.testing.assert_close(loss_o, loss_r, rtol=rtol, atol=atol)
    assert grads_r.keys() == grads_o.keys() and len(grads_r) > 10
    for k in grads_r:
        torch.testing.assert_close(
            grads_o[k].contiguous(), grads_r[k], rtol=rtol, atol=atol, msg=lambda m, k=k: f"{k}: {m}"
        )


def test_channels_last_gives_the_same_loss_and_gradients_for_resnet18(tiny_recipe):
    eager = _model(tiny_recipe, [])
    nhwc = _model(tiny_recipe, ["model.channels_last=true"], seed=1)
    nhwc.load_state_dict(eager.state_dict())
    conv1 = nhwc.branch_a.encoder.net.conv1
    assert conv1.weight.is_contiguous(memory_format=torch.channels_last) and not conv1.weight.is_contiguous()
    seen = []
    conv1.register_forward_hook(
        lambda m, inp, out: seen.append(inp[0].is_contiguous(memory_format=torch.channels_last))
    )
    views = _views()
    _assert_same(_loss_and_grads(eager, views), _loss_and_grads(nhwc, views), rtol=1e-4, atol=1e-5)
    assert seen == [True, True]  # the branch converted both views
    # Representations (what evaluation and embed use) too, in eval mode.
    with torch.no_grad():
        torch.testing.assert_close(
            nhwc.eval().branch_a.encode(views[0]), eager.eval().branch_a.encode(views[0]), rtol=1e-4, atol=1e-5
        )


VIT = [
    f"model.{side}.{key}"
    for side in ("branch_a", "branch_b")
    for key in (
        "encoder=vit_tiny",
        "encoder_kwargs.image_size=16",
        "encoder_kwargs.patch_size=8",
        "encoder_kwargs.depth=2",
    )
]


def test_grad_checkpointing_gives_the_same_loss_and_gradients_for_a_vit(tiny_recipe):
    plain = _model(tiny_recipe, VIT)
    ckpt = _model(
        tiny_recipe, VIT + ["model.branch_a.grad_checkpointing=true", "model.branch_b.grad_checkpointing=true"], seed=1
    )
    ckpt.load_state_dict(plain.state_dict())
    assert ckpt.branch_a.encoder.model.grad_checkpointing and not plain.branch_a.encoder.model.grad_checkpointing
    assert "grad_checkpointing" not in ckpt.branch_a.encoder_kwargs  # training only: not in exports
    calls = {"plain": 0, "ckpt": 0}
    for key, model in (("plain", plain), ("ckpt", ckpt)):
        # A pre-hook: the recomputation stops inside the block once it has what backward needs.
        model.branch_a.encoder.model.blocks[0].register_forward_pre_hook(
            lambda *a, key=key: calls.__setitem__(key, calls[key] + 1)
        )
    views = _views()
    _assert_same(_loss_and_grads(plain, views), _loss_and_grads(ckpt, views), rtol=1e-5, atol=1e-6)
    # Two views each: checkpointing runs the block again in the backward pass.
    assert calls == {"plain": 2, "ckpt": 4}


def test_speed_options_refuse_what_they_cannot_do(tiny_recipe):
    with pytest.raises(
        ConfigError,
        match=r"model.branch_a.grad_checkpointing=true but encoder 'resnet18' has no gradient checkpointing; "
        r"encoders that have it: vit_tiny, vit_small, vit_base",
    ):
        _model(tiny_recipe, ["model.branch_a.grad_checkpointing=true", "model.branch_b.grad_checkpointing=true"])
    with pytest.raises(ConfigError, match=r"model.shared=true .* model.branch_b.grad_checkpointing"):
        load_config(tiny_recipe, ["model.branch_a.grad_checkpointing=true"])
    with pytest.raises(ConfigError, match=r"model.compile_mode=max-autotune needs model.compile=true"):
        load_config(tiny_recipe, ["model.compile_mode=max-autotune"])
    with pytest.raises(ConfigError, match=r"model.compile_mode='fast' is not one of: default, reduce-overhead"):
        load_config(tiny_recipe, ["model.compile=true", "model.compile_mode=fast"])

    def flat(image_size: int = 16):
        m = nn.Sequential(nn.Flatten(), nn.Linear(3 * image_size * image_size, 8))
        m.out_dim, m.modality = 8, "image"
        return m

    registry.register_encoder("test_speed_flat", modality="image")(flat)
    try:
        with pytest.raises(
            ConfigError,
            match=r"^model.channels_last=true needs an encoder with 2-D convolutions .* set model.channels_last=false$",
        ):
            _model(
                tiny_recipe,
                [
                    "model.branch_a.encoder=test_speed_flat",
                    "model.branch_b.encoder=test_speed_flat",
                    "model.channels_last=true",
                ],
            )
    finally:
        registry.ENCODERS._entries.pop("test_speed_flat", None)


class TinyConv(nn.Module):
    modality = "image"

    def __init__(self, image_size: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.out_dim = 8

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


def test_a_failing_compiler_is_one_line_naming_the_fix():
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no C++ compiler\nsecond line of the compiler's output")

    branch = Branch("pics", TinyConv(), Expander(8, "16"))
    branch.compile_encoder(mode=None, backend=broken_backend)
    try:
        with pytest.raises(ConfigError) as info:
            branch(torch.randn(2, 3, 8, 8))
    finally:
        torch._dynamo.reset()
    text = str(info.value)
    assert "\n" not in text and "branch 'pics'" in text and "no C++ compiler second line" in text
    assert text.endswith("set model.compile=false to train without compiling")


def test_an_export_of_a_torch_compile_wrapped_encoder_has_the_eager_keys(tmp_path):
    torch.manual_seed(0)
    registry.register_encoder("test_speed_conv", modality="image")(TinyConv)
    try:
        branch = Branch("pics", TinyConv(), Expander(8, "16"))
        branch.encoder = torch.compile(branch.encoder)  # a user's own wrapping: keys get "_orig_mod."
        assert any("_orig_mod." in k for k in branch.state_dict())
        export_branch(branch, tmp_path, "test_speed_conv", {})
        loaded = load_branch(tmp_path, "pics")
        x = torch.randn(2, 3, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), branch.expander(branch.encoder._orig_mod(x)))
    finally:
        registry.ENCODERS._entries.pop("test_speed_conv", None)


@pytest.mark.slow  # inductor compiles C++: about 40-70 s on 2 CPU cores
def test_a_compiled_encoder_matches_eager_and_exports_to_an_uncompiled_one(tiny_recipe, tmp_path):
    registry.register_encoder("test_speed_conv", modality="image")(TinyConv)
    overrides = [
        "model.branch_a.encoder=test_speed_conv",
        "model.branch_b.encoder=test_speed_conv",
        "model.branch_a.expander=16",
        "model.branch_b.expander=16",
    ]
    try:
        compiled = _model(tiny_recipe, overrides + ["model.compile=true"]).eval()
        eager = _model(tiny_recipe, overrides, seed=1).eval()
        eager.load_state_dict(compiled.state_dict())  # strict: the same keys, no "_orig_mod."
        branch = compiled.branch_a
        assert branch.compile_mode == "default" and branch.encoder._compiled_call_impl is not None
        x = torch.randn(4, 3, 16, 16)
        with torch.no_grad():
            start = time.perf_counter()
            y = branch.encode(x)
            print(f"\ncompile + first call of the tiny encoder: {time.perf_counter() - start:.1f} s")
            torch.testing.assert_close(y, eager.branch_a.encode(x), rtol=1e-5, atol=1e-6)
            export_branch(branch, tmp_path, "test_speed_conv", {})
            loaded = load_branch(tmp_path, branch.name)
            assert loaded.compile_mode is None
            torch.testing.assert_close(loaded(x), branch(x), rtol=1e-5, atol=1e-6)
    finally:
        registry.ENCODERS._entries.pop("test_speed_conv", None)
        torch._dynamo.reset()
