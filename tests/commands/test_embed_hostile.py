"""Round 3 of hostile inputs (issue 24), `multivic embed` mistakes: --batch-size 0 and
--num-workers -1 were DataLoader tracebacks; a captions --input that is not captions (JSON of
numbers, broken JSON, bytes that are not UTF-8, nesting 10^5 deep) was a traceback. Each is now one
line naming the option or the file, and nothing is written."""

import re

import pytest

from multivic.cli import main
from multivic.commands.embed import embed_inputs
from multivic.errors import ConfigError, DataError
from tests.helpers.text_export import write_text_export


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return write_text_export(tmp_path_factory.mktemp("embed") / "export")


@pytest.fixture
def captions(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_text("a red circle\na blue star\n")
    return path


@pytest.mark.parametrize("options", [{"batch_size": 0}, {"num_workers": -1}, {"num_workers": 100_000}])
def test_loader_options_out_of_range_are_config_errors(export, captions, tmp_path, options):
    with pytest.raises(ConfigError, match=r"--batch-size must be >= 1 and --num-workers in \[0, 256\]"):
        embed_inputs(export, "txt", captions, tmp_path / "out.npy", **options)
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize(
    "name,data",
    [
        ("numbers.json", b'{"annotations": [1, 2]}'),  # was: AttributeError
        ("broken.json", b"{not json"),  # was: JSONDecodeError
        ("deep.json", b"[" * 100_000 + b"]" * 100_000),  # was: RecursionError
        ("binary.txt", bytes(range(128, 256))),  # was: UnicodeDecodeError
    ],
)
def test_a_captions_input_that_is_not_captions_is_one_line(export, tmp_path, capsys, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out.npy"
    with pytest.raises(DataError, match=re.escape(str(path))) as refused:  # the reader names the file
        embed_inputs(export, "txt", path, out)
    assert "\n" not in str(refused.value)
    assert main(["embed", str(export), "--branch", "txt", "--input", str(path), "--out", str(out)]) == 2
    assert "Traceback" not in capsys.readouterr().err and not out.exists()


def test_captions_embed(export, captions, tmp_path):
    assert embed_inputs(export, "txt", captions, tmp_path / "out.npy") == (2, 8)
