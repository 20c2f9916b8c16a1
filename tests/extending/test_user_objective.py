"""A user's objective, registered from their own module, trains through `multivic train`."""

import csv
import textwrap

import pytest
import torch

from multivic import registry
from multivic.build import build_data, build_model, build_optimizer_specs
from multivic.cli import main
from multivic.config import load_config
from multivic.errors import ConfigError

pytestmark = pytest.mark.slow

TOY = textwrap.dedent('''
    from dataclasses import dataclass, field

    import torch
    from torch import nn

    from multivic import register_objective
    from multivic.errors import NonFiniteLossError


    @dataclass
    class ToyOutput:
        loss: torch.Tensor
        terms: dict = field(default_factory=dict)

        def metrics(self):
            out = {"loss": self.loss.detach()}
            out.update({k: v.detach() for k, v in self.terms.items()})
            return out


    @register_objective("toy_cosine")
    class ToyCosine(nn.Module):
        """Negative cosine similarity scaled by a learnable temperature (a parameter of the loss)."""

        def __init__(self, init_scale: float = 1.0, spread_coeff: float = 0.1):
            super().__init__()
            if init_scale <= 0:
                raise ValueError(f"init_scale must be > 0; got {init_scale}")
            self.log_scale = nn.Parameter(torch.tensor(float(init_scale)).log())
            self.spread_coeff = spread_coeff

        def forward(self, z_a, z_b):
            z_a, z_b = z_a.float(), z_b.float()
            cos = nn.functional.cosine_similarity(z_a, z_b).mean()
            spread = z_a.std(dim=0).mean() + z_b.std(dim=0).mean()
            loss = -self.log_scale.exp() * cos - self.spread_coeff * spread + 0.1 * self.log_scale ** 2
            if not torch.isfinite(loss):
                raise NonFiniteLossError("toy loss is not finite")
            return ToyOutput(loss, {"cosine": cos, "spread": spread})
''')


@pytest.fixture
def toy_recipe(tiny_recipe, tmp_path):
    (tmp_path / "toy_objective.py").write_text(TOY)
    text = tiny_recipe.read_text().replace(
        "seed: 0", "seed: 0\nimports: [toy_objective.py]\nloss: {name: toy_cosine, init_scale: 2.0}"
    )
    tiny_recipe.write_text(text)
    return tiny_recipe


def test_user_objective_trains_and_logs_its_terms(toy_recipe, tmp_path):
    run = tmp_path / "run"
    assert main(["train", str(toy_recipe), "--output-dir", str(run), "--no-progress", "eval.enabled=false"]) == 0
    with (run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and {"cosine", "spread", "loss"} <= set(rows[0])
    config = (run / "config.yaml").read_text()
    assert "name: toy_cosine" in config and "spread_coeff: 0.1" in config  # defaults filled in


def test_objective_parameters_are_trained_with_per_branch_optimisers(toy_recipe):
    cfg = load_config(
        toy_recipe,
        [
            "model.shared=false",
            "model.branch_b.name=other",
            "model.branch_a.optim.name=adamw",
            "model.branch_a.optim.base_lr=0.01",
        ],
    )
    model = build_model(cfg, build_data(cfg))
    specs = build_optimizer_specs(cfg, model)
    assert [s.label for s in specs] == ["tiny", "other", "objective"]
    assert specs[2].module is model.loss_fn and any(p is model.loss_fn.log_scale for p in specs[2].module.parameters())
    assert torch.isclose(model.loss_fn.log_scale.exp(), torch.tensor(2.0))


def test_objective_keys_are_checked_against_its_signature(toy_recipe):
    with pytest.raises(
        ConfigError,
        match=r"unknown config key 'loss.temperature': objective 'toy_cosine' takes: init_scale, spread_coeff",
    ):
        load_config(toy_recipe, ["loss.temperature=0.1"])
    with pytest.raises(ConfigError, match=r"loss.init_scale must be > 0"):
        load_config(toy_recipe, ["loss.init_scale=-1"])
    with pytest.raises(
        ConfigError, match=r"loss.name: unknown objective 'nope'.*Known objectives: .*toy_cosine.*vicreg"
    ):
        load_config(toy_recipe, ["loss.name=nope"])


def test_objective_by_import_path_and_by_entry_point(tmp_path, monkeypatch):
    """The other two routes: ``loss.name=package.module:Class`` and the multivic.objectives group."""
    from multivic.config import resolve_loss

    (tmp_path / "toy_objective_pkg.py").write_text(TOY.replace('@register_objective("toy_cosine")\n', ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    resolved = resolve_loss({"name": "toy_objective_pkg:ToyCosine", "init_scale": 3.0})
    assert resolved == {"name": "toy_objective_pkg:ToyCosine", "init_scale": 3.0, "spread_coeff": 0.1}

    info = tmp_path / "toy_dist-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-dist\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[multivic.objectives]\ntoy_from_dist = toy_objective_pkg:ToyCosine\n")
    monkeypatch.setattr(registry.OBJECTIVES, "_loaded", False)
    try:
        assert "toy_from_dist" in registry.OBJECTIVES.names()
        assert registry.OBJECTIVES.get("toy_from_dist").source == "entry point of toy-dist"
        assert resolve_loss({"name": "toy_from_dist"})["init_scale"] == 1.0
    finally:
        registry.OBJECTIVES._entries.pop("toy_from_dist", None)
