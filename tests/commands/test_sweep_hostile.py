"""Round 3 of hostile inputs (issue 24), sweep files and sweep folders from elsewhere: a YAML
alias bomb in a grid value hung `multivic sweep` (the dry run included), and a sweep.json nested
10^5 deep in --output-dir was a RecursionError traceback. Both are now one-line errors."""

import pytest

from multivic.commands.sweep import build_sweep, is_sweep_file, prepare_dir
from multivic.errors import ConfigError, RunDirError

RECIPE = "recipes/quickstart/image_image.yaml"


def _bomb(levels=7):
    text = '{"k0": &a0 ["x","x","x","x","x","x","x","x","x","x"]'
    for i in range(1, levels + 1):
        text += f', "k{i}": &a{i} [' + ",".join([f"*a{i - 1}"] * 10) + "]"
    return text + "}"


def test_an_alias_bomb_in_a_grid_value_is_refused_not_expanded(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(f"recipe: {RECIPE}\ngrid:\n  seed: [0, 1]\n  loss.std_coeff: [1, {_bomb()}]\n")
    assert is_sweep_file(path)
    with pytest.raises(ConfigError, match="over 100000 values once its aliases are expanded"):
        build_sweep(str(path), [])


def test_a_deeply_nested_sweep_json_is_one_line(tmp_path):
    sweep = build_sweep(RECIPE, ["seed=0,1"])
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RunDirError, match="sweep.json is damaged"):
        prepare_dir(out, sweep)


def test_a_sweep_json_of_another_shape_is_one_line(tmp_path):
    sweep = build_sweep(RECIPE, ["seed=0,1"])
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text('{"recipe_path": 5, "grid": []}')
    with pytest.raises(RunDirError, match="sweep.json is not readable"):
        prepare_dir(out, sweep)
    (out / "sweep.json").unlink()
    prepare_dir(out, sweep)
    prepare_dir(out, sweep)  # the same sweep resumes
