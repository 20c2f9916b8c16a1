"""`multivic report` and `multivic compare` on run directories written by someone else (issue
24): report.md shows config values and history cells as text, not HTML or links (item 10);
compare prints no terminal control sequences from config.yaml (item 10); damaged history,
examples and thumbnails are one-line errors (item 8); a FIFO is refused without hanging (item 9)."""

import json
import re

import pytest
import yaml
from PIL import Image

from multivic.cli import main
from multivic.errors import RunDirError
from multivic.report import read_run, write_report
from tests.helpers.hostile import Fifo
from tests.helpers.report_runs import history_rows, make_run

HTML = "<img src=x onerror=alert(1)>"
LINK = "[click me](javascript:alert(1))"
ESC = "\x1b]0;owned\x07\x1b[2J\x1b[31mred"


def test_report_md_escapes_config_values_and_history_cells(tmp_path):
    rows = history_rows(collapse_from=20)
    for row in rows[19:]:
        row["collapse_alarm"] = f"<script>alert(1)</script> {LINK}"
    config = {
        "model": {
            "branch_a": {"name": HTML, "encoder": LINK, "expander": "64"},
            "branch_b": {"name": "b", "encoder": f"</td>{ESC}", "expander": "64"},
        },
        "loss": {"name": "vicreg"},
        "train": {"epochs": 3, "batch_size": 8},
        "data": {"format": "image_folder", "root": "&amp;"},
    }
    run = make_run(tmp_path / "run", rows, metrics={f"{HTML}/knn_top1": 1.0}, config=config)
    report = write_report(run)
    markdown = report.markdown.read_text()
    for raw in ("<img", "<script", "</td", "\x1b", "\x07"):
        assert raw not in markdown, f"report.md carries {raw!r} as markup"
    assert not re.search(r"(?<!\\)\]\(javascript", markdown), "report.md carries a link"
    assert "&lt;img src=x onerror=alert(1)>" in markdown and "&amp;amp;" in markdown and "\\\\x1b" in markdown
    page = report.html.read_text()
    assert "<img src=x" not in page and "<script>" not in page and "\x1b" not in page


def test_compare_prints_no_control_sequences_from_a_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = []
    for name, encoder in (("a", "resnet18"), ("b", f"resnet18{ESC}\u202eevil")):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({"model": {"branch_a": {"encoder": encoder}}, "seed": 0}))
        (run / "metrics.json").write_text(json.dumps({f"x{ESC}/knn_top1": 1.0}))
        runs.append(str(run))
    assert main(["compare", *runs]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "resnet18\\x1b]0;owned\\x07" in out


def test_an_error_line_prints_no_control_sequences(tmp_path, capsys):
    run = tmp_path / f"run{ESC}"
    run.mkdir()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b'step,epoch\n1,0\n"unterminated', b"step,loss\nabc,1\n"])
def test_a_damaged_history_is_a_one_line_error(tmp_path, capsys, content):
    run = make_run(tmp_path / "run", history_rows())
    (run / "history.csv").write_bytes(content)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "history.csv" in err and "\n" not in err


def _with_examples(tmp_path, directions, thumbnail=None):
    run = make_run(tmp_path / "run", history_rows())
    folder = run / "eval_examples"
    folder.mkdir()
    (folder / "examples.json").write_text(json.dumps({"directions": directions}))
    return run, folder


def _directions(thumbnail="image_0.png"):
    item = {"index": 0, "thumbnail": thumbnail}
    return [
        {
            "query_kind": "image",
            "item_kind": "text",
            "queries": [{"query": item, "top": [{"index": 1, "text": "a cat", "correct": True}]}],
        }
    ]


@pytest.mark.parametrize(
    "directions",
    [
        5,
        [5],
        [{"query_kind": "image"}],
        [{"query_kind": "i", "item_kind": "t", "queries": [7]}],
        _directions("../../etc/passwd.png"),
        _directions(".hidden.png"),
    ],
)
def test_tampered_examples_are_a_one_line_error(tmp_path, capsys, directions):
    run, _ = _with_examples(tmp_path, directions)
    with pytest.raises(RunDirError, match="examples.json"):
        read_run(run)
    assert main(["report", str(run)]) == 2
    assert "\n" not in capsys.readouterr().err.strip()


@pytest.mark.parametrize("thumbnail", [b"not a png", "huge"])
def test_a_damaged_or_huge_thumbnail_is_a_one_line_error(tmp_path, capsys, thumbnail):
    run, folder = _with_examples(tmp_path, _directions())
    if thumbnail == "huge":
        Image.new("1", (8000, 8000)).save(folder / "image_0.png")
    else:
        (folder / "image_0.png").write_bytes(thumbnail)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "image_0.png" in err and "\n" not in err


def test_a_fifo_thumbnail_is_refused_without_hanging(tmp_path, capsys):
    run, folder = _with_examples(tmp_path, _directions())
    fifo = Fifo(folder / "image_0.png")
    assert main(["report", str(run)]) == 2
    assert not fifo.close(), "the report blocked reading a FIFO thumbnail"
    assert "FIFO" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["config.yaml", "metrics.json", "history.csv"])
def test_a_fifo_in_the_run_directory_stops_the_report_without_hanging(tmp_path, capsys, name):
    run = make_run(tmp_path / "run", history_rows())
    (run / name).unlink()
    fifo = Fifo(run / name)
    assert main(["report", str(run)]) == 2
    assert not fifo.close(), f"the report blocked reading a FIFO {name}"
    err = capsys.readouterr().err.strip()
    assert name in err and "\n" not in err
