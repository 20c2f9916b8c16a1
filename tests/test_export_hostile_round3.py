"""Round 3 of hostile inputs (issue 24), exports from elsewhere: a run's export/ folder, a branch's
json or its tokenizer files linking outside what the user named were read (a vocabulary from
another folder shaped the embeddings, exit 0); a <branch>.state.tmp link made export write the
tokenizer into the linked folder. Reads are now refused; a leftover link is removed, not followed."""

import json

import pytest

from multivic.errors import MultivicError
from multivic.export import export_branch, load_branch
from tests.helpers.text_export import write_text_export


@pytest.fixture
def run(tmp_path):
    """A run directory holding only an export of a small text branch."""
    write_text_export(tmp_path / "run" / "export")
    return tmp_path / "run"


@pytest.fixture
def elsewhere(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "vocabulary.json").write_text(json.dumps({"kind": "word", "words": ["<pad>", "<unk>", "SECRET"]}))
    return folder


def test_the_export_loads(run):
    assert len(load_branch(run, "txt").preprocess.fitted) == 9  # <pad>, <unk> and 7 words


def test_an_export_folder_linking_out_of_the_run_is_not_read(run, tmp_path):
    (run / "export").rename(tmp_path / "moved")
    (run / "export").symlink_to(tmp_path / "moved")
    with pytest.raises(MultivicError, match="export leads outside the run directory"):
        load_branch(run, "txt")
    assert load_branch(tmp_path / "moved", "txt")  # named on the command line: the user's choice


def test_a_branch_json_linking_outside_is_not_read(run, tmp_path):
    json_path = run / "export" / "txt.json"
    (tmp_path / "txt.json").write_text(json_path.read_text())
    json_path.unlink()
    json_path.symlink_to(tmp_path / "txt.json")
    with pytest.raises(MultivicError, match="txt.json leads outside"):
        load_branch(run, "txt")


def test_a_vocabulary_linking_outside_is_not_read(run, elsewhere):
    vocabulary = run / "export" / "txt.state" / "vocabulary.json"
    vocabulary.unlink()
    vocabulary.symlink_to(elsewhere / "vocabulary.json")  # was: loaded, embeddings made with it, exit 0
    with pytest.raises(MultivicError, match="vocabulary.json leads outside"):
        load_branch(run, "txt")


def test_a_state_tmp_link_is_removed_not_written_through(run, elsewhere):
    branch = load_branch(run, "txt")
    (run / "export" / "txt.state.tmp").symlink_to(elsewhere)
    export_branch(branch, run / "export", "gru", branch.encoder_kwargs)
    assert json.loads((elsewhere / "vocabulary.json").read_text())["words"][2] == "SECRET"  # untouched
    assert sorted(p.name for p in elsewhere.iterdir()) == ["vocabulary.json"]
    state = run / "export" / "txt.state"
    assert state.is_dir() and not state.is_symlink() and (state / "vocabulary.json").is_file()
