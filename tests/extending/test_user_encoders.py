"""Users' own encoders, three ways, without installing anything globally; timm names and checkpoints."""

import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file

from multivic import create_encoder, list_encoders, registry
from multivic.errors import ConfigError, RegistryError

MODULE = """
from torch import nn
from multivic import register_encoder

class Pool(nn.Module):
    modality = "image"
    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.out_dim = width
    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))

@register_encoder("{name}", modality="image")
def decorated(width: int = 8):
    return Pool(width)

def plain_factory(width: int = 6):
    return Pool(width)
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Writes a module the test imports by name, and cleans the registry afterwards."""
    name = f"user_enc_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE.format(name=f"{name}_cnn"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    registry.ENCODERS._entries.pop(f"{name}_cnn", None)
    sys.modules.pop(name, None)


def test_way_1_decorator_in_a_module_listed_under_imports(user_module, tmp_path):
    registry.import_modules([user_module])
    enc = create_encoder(f"{user_module}_cnn", width=5)
    assert enc.out_dim == 5 and enc(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    # A .py path works as well, and a missing module is a one-line config error.
    registry.import_modules([str(tmp_path / f"{user_module}.py")])
    with pytest.raises(ConfigError, match=r"imports: cannot import 'no_such_module_xyz' \(ModuleNotFoundError"):
        registry.import_modules(["no_such_module_xyz"])


def test_way_2_import_path(user_module):
    enc = create_encoder(f"{user_module}:plain_factory", width=4)
    assert enc.out_dim == 4 and enc.modality == "image"
    with pytest.raises(RegistryError, match=r"cannot import module 'nope_pkg.mod'"):
        create_encoder("nope_pkg.mod:factory")
    with pytest.raises(RegistryError, match=rf"module '{user_module}' has no callable 'missing'"):
        create_encoder(f"{user_module}:missing")


def _fake_distribution(root, dist, entry_lines):
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[multivic.encoders]\n" + "\n".join(entry_lines) + "\n")


def test_way_3_entry_points_of_a_fake_distribution(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_plugin_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        from torch import nn
        class Lin(nn.Module):
            modality = "image"
            out_dim = 3
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(3, 3)
            def forward(self, x):
                return self.lin(x.mean(dim=(2, 3)))
        def make():
            return Lin()
        make.modality = "image"
        def no_modality():
            return Lin()
    """)
    )
    (pkg / "broken.py").write_text("raise RuntimeError('plugin import exploded')\n")
    _fake_distribution(
        tmp_path,
        "fake_plugin",
        [
            "plugin_lin = fake_plugin_pkg:make",
            "plugin_broken = fake_plugin_pkg.broken:make",
            "plugin_nomod = fake_plugin_pkg:no_modality",
        ],
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry.ENCODERS, "_loaded", False)
    monkeypatch.setattr(registry.ENCODERS, "_plugin_errors", {})
    try:
        assert "plugin_lin" in list_encoders("image")
        assert registry.encoder_spec("plugin_lin").source == "entry point of fake_plugin"
        assert create_encoder("plugin_lin")(torch.randn(2, 3, 4, 4)).shape == (2, 3)
        with pytest.raises(
            RegistryError,
            match=r"entry point 'plugin_broken' .* of distribution 'fake_plugin' failed to load: "
            r"RuntimeError: plugin import exploded",
        ):
            create_encoder("plugin_broken")
        with pytest.raises(RegistryError, match=r"plugin_nomod.*modality"):
            create_encoder("plugin_nomod")
        assert set(registry.ENCODERS.plugin_errors()) == {"plugin_broken", "plugin_nomod"}
    finally:
        registry.ENCODERS._entries.pop("plugin_lin", None)
        sys.modules.pop("fake_plugin_pkg", None)


def test_timm_names_and_suggestions():
    enc = create_encoder("timm:resnet18", image_size=64)  # CNNs ignore the image size
    assert enc.out_dim == 512
    with pytest.raises(
        RegistryError, match=r"timm has no model 'vit_smal_patch16_224'; did you mean timm:vit_small_patch16_224"
    ):
        create_encoder("timm:vit_smal_patch16_224")
    vit = create_encoder("vit_small", image_size=32, patch_size=16)
    assert vit.out_dim == 384 and vit(torch.randn(1, 3, 32, 32)).shape == (1, 384)


def test_timm_local_checkpoint(tmp_path):
    torch.manual_seed(0)
    src = create_encoder("timm:resnet10t")
    state = {k: v.contiguous() for k, v in src.model.state_dict().items()}
    state["fc.weight"] = torch.zeros(10, 512)  # a classifier head the encoder drops
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.manual_seed(1)
    loaded = create_encoder("timm:resnet10t", checkpoint=str(tmp_path / "w.safetensors")).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), src.eval()(x))
    with pytest.raises(RegistryError, match="checkpoint .* not found"):
        create_encoder("timm:resnet10t", checkpoint=str(tmp_path / "missing.pth"))
    save_file({"conv1.weight": torch.zeros(1)}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(RegistryError, match="lacks"):
        create_encoder("timm:resnet10t", checkpoint=str(tmp_path / "partial.safetensors"))


def test_branch_whose_modality_does_not_match_the_data(tiny_recipe, user_module):
    from multivic.build import build_data, build_model
    from multivic.config import load_config

    registry.import_modules([user_module])

    def text_encoder():
        m = torch.nn.Linear(4, 8)
        m.out_dim, m.modality = 8, "text"
        return m

    registry.register_encoder("test_text_only", modality="text")(text_encoder)
    try:
        cfg = load_config(
            tiny_recipe,
            [
                "model.shared=false",
                "model.branch_b.name=words",
                "model.branch_b.encoder=test_text_only",
                "model.branch_b.expander=64-64",
            ],
        )
        with pytest.raises(
            ConfigError,
            match=r"model.branch_b \('words'\) reads modality 'text' but data.format='image_folder' gives 'image'",
        ):
            build_model(cfg, build_data(cfg))
    finally:
        registry.ENCODERS._entries.pop("test_text_only", None)
