"""Round 3 of hostile inputs (issue 24), config values: a run's config.yaml is read back by
``multivic eval`` as data from elsewhere, and a recipe or override may be mistyped. Each value
below crashed with a traceback, gave a silent result, forked without bound or wrote outside
the export folder; now each is a one-line ConfigError naming the key."""

import pytest

from multivic.commands.evaluate import load_run_config
from multivic.config import load_config, to_yaml
from multivic.errors import ConfigError
from multivic.run_dir import RunDir

QUICKSTART = "recipes/quickstart/image_image.yaml"


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["seed=99999999999999999999"], r"seed must be in \[0, "),  # was: ValueError Overflow in manual_seed
        (["seed=-1"], r"seed must be in \[0, "),  # was: ValueError from SeedSequence
        (["eval.batch_size=0"], r"eval.batch_size must be >= 1"),  # was: DataLoader ValueError
        (["eval.linear_epochs=-3"], r"eval.linear_epochs must be >= 1"),  # was: a chance-level probe, exit 0
        (["eval.max_train_samples=0"], r"eval.max_train_samples must be >= 1"),
        (["eval.linear_lr=nan"], r"eval.linear_lr must be a finite number > 0"),
        (["data.num_workers=100000"], r"data.num_workers must be at most"),  # was: 10^5 worker processes
        (["model.branch_a.name=../../x", "model.branch_b.name=../../x"], r"model.branch_a.name='../../x' is not"),
    ],
)
def test_hostile_values_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(QUICKSTART, overrides)


def test_a_run_config_with_a_huge_seed_is_refused_by_eval(tmp_path):
    """`multivic eval RUN` on a config.yaml whose seed no RNG takes: one line, before any data is read."""
    text = to_yaml(load_config(QUICKSTART)).replace("seed: 0", "seed: 99999999999999999999999999", 1)
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(ConfigError, match="seed must be in"):
        load_run_config(RunDir(tmp_path))


def test_a_run_config_linking_outside_the_run_is_not_read(tmp_path):
    """`multivic train --output-dir RUN` (resuming) and `multivic eval RUN` read RUN/config.yaml as a
    run's config: one linking to another file was read, and a value of it shown in the error."""
    (tmp_path / "other.yaml").write_text(to_yaml(load_config(QUICKSTART)).replace("seed: 0", "seed: TOPSECRET", 1))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").symlink_to(tmp_path / "other.yaml")
    with pytest.raises(ConfigError, match="config.yaml leads outside") as refused:
        load_config(run / "config.yaml", legacy=True)
    assert "TOPSECRET" not in str(refused.value)
    (tmp_path / "recipe.yaml").write_text(to_yaml(load_config(QUICKSTART)))
    (tmp_path / "my_recipe.yaml").symlink_to(tmp_path / "recipe.yaml")
    assert load_config(tmp_path / "my_recipe.yaml").seed == 0  # a recipe the user names may link anywhere
