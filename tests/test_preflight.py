"""Pre-flight: the mistakes that used to surface mid-training as tracebacks are one-line errors
before the run directory exists; the checks change nothing about training."""

import logging
import random
import textwrap

import numpy as np
import pytest
import torch

from multivic.cli import main
from multivic.data.loader import preserved_rng
from multivic.errors import ConfigError
from multivic.preflight import check_precision, check_run, launcher_precision

BAD_ENCODER = textwrap.dedent("""
    from torch import nn
    from multivic import register_encoder


    class NoFlatten(nn.Module):
        modality = "image"
        out_dim = 8

        def __init__(self):
            super().__init__()
            self.conv, self.pool = nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            return self.pool(self.conv(x))  # [B, 8, 1, 1]: not flattened


    @register_encoder("no_flatten_pf", modality="image")
    def no_flatten_pf():
        return NoFlatten()
""")


def _refused(args, run, capsys) -> str:
    assert main(["train", *args, "--output-dir", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert not run.exists() and len(err.strip().splitlines()) == 1, err
    return err


def test_an_encoder_that_does_not_flatten_is_refused_naming_the_branch(tmp_path, tiny_recipe, capsys):
    (tmp_path / "bad.py").write_text(BAD_ENCODER)
    text = tiny_recipe.read_text().replace("seed: 0", f"seed: 0\nimports: [{tmp_path / 'bad.py'}]")
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text.replace("encoder: resnet18", "encoder: no_flatten_pf"))
    err = _refused([str(recipe)], tmp_path / "run", capsys)
    assert "model.branch_a (no_flatten_pf) returns [2, 8, 1, 1] for 2 inputs" in err and "torch.flatten" in err


def test_a_vit_fed_views_of_another_size_is_refused_naming_the_keys(tmp_path, tiny_recipe, capsys):
    err = _refused(
        [
            str(tiny_recipe),
            "model.branch_a.encoder=vit_tiny",
            "model.branch_b.encoder=vit_tiny",
            "model.branch_a.encoder_kwargs={image_size: 32, patch_size: 8, depth: 1}",
            "model.branch_b.encoder_kwargs={image_size: 32, patch_size: 8, depth: 1}",
        ],
        tmp_path / "run",
        capsys,
    )
    assert "model.branch_a (vit_tiny) cannot read this recipe's batches of [2, 3, 16, 16]" in err
    assert "data.image_size" in err


def test_fp16_on_the_cpu_is_refused_with_the_alternative(tmp_path, tiny_recipe, capsys):
    err = _refused([str(tiny_recipe), "train.mixed_precision=fp16"], tmp_path / "run", capsys)
    assert "train.mixed_precision=fp16 needs a CUDA GPU" in err and "bf16" in err
    with pytest.raises(ConfigError):
        check_precision("fp16", torch.device("cpu"))
    check_precision("bf16", torch.device("cpu"))


def test_one_rule_settles_the_launchers_precision_against_the_recipes(caplog):
    with caplog.at_level(logging.WARNING, logger="multivic"):
        assert launcher_precision("no", "no", {}) == "no"
        assert launcher_precision("no", "no", {"ACCELERATE_MIXED_PRECISION": "bf16"}) == "bf16"  # default: launcher
        assert not caplog.records or "follows the launcher: bf16" in caplog.text
        assert launcher_precision("fp16", "no", {"ACCELERATE_MIXED_PRECISION": "bf16"}) == "fp16"  # set: recipe
    assert "the launcher asks for mixed precision bf16, the recipe for train.mixed_precision=fp16" in caplog.text


def _toy_model():
    from multivic.branch import JointEmbedding, build_branch

    branch = build_branch("img", "resnet18", {}, "16-16")
    return JointEmbedding(branch, branch)


class Pairs(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):  # views draw from the global RNG, as real ones do
        return torch.rand(3, 16, 16), torch.rand(3, 16, 16)


def test_the_checks_leave_every_random_generator_and_the_model_as_they_were():
    model = _toy_model()
    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    before = (torch.random.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    check_run(model, [("model.branch_a", "resnet18", model.branch_a, 0)], Pairs(), None, torch.device("cpu"), 8, 2, "k")
    assert torch.equal(torch.random.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert np.array_equal(np.random.get_state()[1], before[2])
    assert model.training and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN stats too
    with preserved_rng():
        torch.rand(3)
    assert torch.equal(torch.random.get_rng_state(), before[0])


def test_a_step_larger_than_the_free_memory_is_warned_about_naming_the_keys(caplog, monkeypatch):
    import multivic.preflight as preflight

    monkeypatch.setattr(preflight, "available_memory", lambda device: 1 << 20)  # 1 MiB free
    model = _toy_model()
    with caplog.at_level(logging.WARNING, logger="multivic"):
        check_run(
            model,
            [("model.branch_a", "resnet18", model.branch_a, 0)],
            Pairs(),
            None,
            torch.device("cpu"),
            256,
            2,
            "train.batch_size",
        )
    assert "GiB but the machine has 0.0 GiB free" in caplog.text and "lower train.batch_size" in caplog.text
