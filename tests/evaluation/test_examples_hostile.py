"""Round 3 of hostile inputs (issue 24), eval_examples/ in a run directory from elsewhere: an
eval_examples.tmp link made `multivic eval` fail with a traceback after rewriting metrics.json;
examples.json or a thumbnail linking outside the run was read into the report. A leftover link is
now removed (never its target) and reads outside the run are refused."""

import json

import pytest
from PIL import Image

from multivic.errors import RunDirError
from multivic.evaluation.examples import RetrievalExamples, open_thumbnail, read_examples, write_examples

DIRECTIONS = [
    {
        "query_kind": "image",
        "item_kind": "text",
        "queries": [{"query": {"index": 0, "thumbnail": "image_0.png"}, "top": [{"index": 0, "correct": True}]}],
    }
]


def _examples():
    return RetrievalExamples(DIRECTIONS, {"image_0.png": Image.new("RGB", (8, 8))})


@pytest.fixture
def elsewhere(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "keep.txt").write_text("keep")
    Image.new("RGB", (8, 8), "red").save(folder / "image_0.png")
    (folder / "examples.json").write_text(json.dumps({"directions": DIRECTIONS}))
    return folder


@pytest.mark.parametrize("leftover", ["eval_examples.tmp", "eval_examples.old"])
def test_a_leftover_link_is_removed_and_its_target_kept(tmp_path, elsewhere, leftover):
    run = tmp_path / "run"
    run.mkdir()
    (run / leftover).symlink_to(elsewhere)  # was: FileExistsError traceback (.tmp)
    write_examples(_examples(), run / "eval_examples")
    assert read_examples(run / "eval_examples") == DIRECTIONS
    assert sorted(p.name for p in elsewhere.iterdir()) == ["examples.json", "image_0.png", "keep.txt"]
    assert not (run / leftover).exists()


def test_examples_linking_out_of_the_run_are_not_read(tmp_path, elsewhere):
    run = tmp_path / "run"
    run.mkdir()
    (run / "eval_examples").symlink_to(elsewhere)
    with pytest.raises(RunDirError, match="examples.json leads outside"):
        read_examples(run / "eval_examples")


def test_a_thumbnail_linking_outside_is_not_read(tmp_path, elsewhere):
    run = tmp_path / "run"
    write_examples(_examples(), run / "eval_examples")
    (run / "eval_examples" / "image_0.png").unlink()
    (run / "eval_examples" / "image_0.png").symlink_to(elsewhere / "image_0.png")
    with pytest.raises(RunDirError, match="image_0.png leads outside"):
        open_thumbnail(run / "eval_examples", "image_0.png")
