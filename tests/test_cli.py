"""The command line itself (no training): version, --debug anywhere, errors that show the
subcommand's usage and the key=value form, YAML positions, near-miss keys, help on every
option, and `multivic config`."""

import argparse

import pytest

from multivic.cli import _parser, main

RECIPE = "recipes/quickstart/image_image.yaml"


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("multivic 0.1.0 (torch ")


def test_debug_is_accepted_after_the_subcommand(capsys):
    with pytest.raises(Exception, match="recipe nothere.yaml not found"):  # --debug: the traceback, not a line
        main(["train", "nothere.yaml", "--debug"])
    assert main(["train", "nothere.yaml"]) == 2
    assert capsys.readouterr().err.startswith("error: recipe nothere.yaml not found")


def test_a_setting_without_a_value_shows_the_subcommands_usage_and_the_key_value_form(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["config", RECIPE, "--explain", "train", "--nope"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("usage: multivic config") and "'--nope'" in err and "key=value" in err


def test_a_setting_without_a_value_is_one_line_naming_the_form(capsys):
    assert main(["train", RECIPE, "train.epochs"]) == 2
    assert capsys.readouterr().err == "error: override 'train.epochs' is not key=value (e.g. train.epochs=5)\n"


def test_an_unknown_command_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main([])
    assert "give a command: compare, config, embed" in capsys.readouterr().err


def test_yaml_errors_give_file_line_and_column(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("seed: 0\ntrain:\n  epochs: 5\n   batch_size: 3\n")
    assert main(["config", str(recipe)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {recipe}:4:14: mapping values are not allowed in this context: fix the YAML there"
    )


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("train.epoch=1", "did you mean train.epochs?"),
        ("modle.shared=true", "did you mean model?"),
        ("loss.simcoeff=1", "did you mean loss.sim_coeff?"),
        ("data.imagesize=16", "did you mean data.image_size?"),
        ("optim.base_rl=0.1", "did you mean optim.base_lr?"),
    ],
)
def test_every_unknown_key_gets_a_near_miss(override, suggestion, capsys):
    assert main(["config", RECIPE, override]) == 2
    err = capsys.readouterr().err
    assert suggestion in err and len(err.strip().splitlines()) == 1


def _actions(parser: argparse.ArgumentParser, path: str = "multivic"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_every_option_and_argument_has_help():
    missing = [f"{path} {a.dest}" for path, a in _actions(_parser()) if not a.help]
    assert not missing


def test_config_prints_every_key_and_says_which_are_set(capsys):
    assert main(["config", RECIPE, "train.epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "train.epochs                      = 3  (set; default 100)" in out
    assert "train.grad_accum_steps            = 1  (default)" in out
    assert "data.image_size                   = 32  (set; default 224)" in out  # a modality's option
    assert "loss.sim_coeff                    = 25.0  (default)" in out  # the objective's argument


def test_config_explains_a_key_with_its_type_default_source_and_meaning(capsys):
    assert main(["config", "recipes/quickstart/wave_spec.yaml", "--explain", "data.sample_rate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("data.sample_rate = 8000\n    type int; default 16000; from the modality waveform\n")
    assert "resampled" in out
    assert main(["config", RECIPE, "--explain", "loss.gamma"]) == 0
    assert "target standard deviation" in capsys.readouterr().out
    assert main(["config", RECIPE, "--explain", "tran.epochs"]) == 2
    assert "did you mean train.epochs" in capsys.readouterr().err
