"""A run directory's config.yaml is data: its data.shards / data.val_shards may not make
`multivic eval` run a command (pipe:) or fetch a remote URL unless the user passes
--trust-commands (issue 24, item 2)."""

import pytest
import yaml

from multivic.branch import build_branch
from multivic.cli import main
from multivic.errors import MultivicError
from multivic.export import export_branch
from multivic.trust import refuse_untrusted_urls, untrusted_urls
from tests.helpers.recipes import TINY_RECIPE


@pytest.mark.parametrize(
    "value",
    [
        "pipe:touch /tmp/x; cat a.tar",
        "PIPE:id",
        "https://example.com/train-{000..009}.tar",
        "gs://bucket/a.tar",
        "hf://datasets/x/a.tar",
        "ais://b/a.tar",
        "scp://h/a.tar",
        "-",
        "${EVIL}",
        "a.tar::pipe:id",
        "{pipe:id,a.tar}",
        "shards/{a.tar,https://x/b.tar}",
        ["ok.tar", "pipe:id"],
    ],
)
def test_commands_and_remote_urls_are_untrusted(value):
    assert untrusted_urls(value)
    with pytest.raises(MultivicError, match="--trust-commands"):
        refuse_untrusted_urls(value, "RUN/config.yaml (data.shards)")
    refuse_untrusted_urls(value, "RUN/config.yaml (data.shards)", trusted=True)  # the user opted in


@pytest.mark.parametrize(
    "value",
    [
        None,
        "/data/train-{000000..000009}.tar",
        "train-000000.tar",
        "file:///data/a.tar",
        "C:\\data\\a.tar",
        ["/a.tar", "b.tar"],
        "/data/a:b.tar",
        "shards/{0..3}.tar::other/{0..3}.tar",
    ],
)
def test_local_shards_are_trusted(value):
    assert untrusted_urls(value) == []
    refuse_untrusted_urls(value, "config.yaml")


def _run_with_shards(tmp_path, shards, val_shards):
    run = tmp_path / "run"
    run.mkdir()
    config = yaml.safe_load(TINY_RECIPE)
    (tmp_path / "shards").mkdir()
    config["data"] = {
        "format": "webdataset",
        "root": str(tmp_path / "shards"),
        "shards": shards,
        "val_shards": val_shards,
        "image_size": 16,
        "num_workers": 0,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    export_branch(build_branch("tiny", "resnet18", {}, "64-64"), run / "export", "resnet18", {})
    return run


def test_eval_refuses_a_pipe_in_the_run_config_and_names_the_flag(tmp_path, capsys):
    marker = tmp_path / "command_ran"
    run = _run_with_shards(tmp_path, f"pipe:touch {marker}; cat /dev/null", f"pipe:touch {marker}")
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert not marker.exists(), "a command from a run directory's config.yaml ran"
    assert err.startswith("error: ") and "\n" not in err
    assert "config.yaml" in err and "data.shards" in err and "--trust-commands" in err
    assert not (run / "metrics.json").exists()


def test_a_shards_value_the_user_gives_on_the_command_line_is_theirs(tmp_path, capsys):
    marker = tmp_path / "command_ran"
    run = _run_with_shards(tmp_path, f"pipe:touch {marker}", None)
    # The user's own override replaces the run's value: no refusal for it (it then fails on the
    # missing local shard, which is not the point here).
    main(["eval", str(run), f"data.shards={tmp_path}/missing-000000.tar"])
    assert "--trust-commands" not in capsys.readouterr().err
    assert not marker.exists()
