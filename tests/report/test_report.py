"""`multivic report`: every figure and both pages from a hand-made run directory (no training)."""

import sys

import pytest
from PIL import Image

from multivic.cli import main
from multivic.errors import RunDirError
from multivic.report import read_run, write_report
from tests.helpers.report_runs import history_rows, make_run

FIGURES = ["loss.png", "lr.png", "std.png", "covariance.png", "rankme.png", "throughput.png"]


def test_report_writes_every_figure_and_a_page_that_shows_them(tmp_path, capsys):
    run = make_run(tmp_path / "run", history_rows(collapse_from=20))
    assert main(["report", str(run)]) == 0
    assert "report.html" in capsys.readouterr().out
    out = run / "report"
    for name in FIGURES:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.size[0] > 500 and image.size[1] > 300
            image.verify()
    page = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    for name in FIGURES:
        assert f'href="{name}"' in page and f"]({name})" in markdown
    assert page.count("data:image/png;base64,") == len(FIGURES)  # self-contained: the page alone shows them
    # the evaluation table, grouped by branch: one row per prefix, metrics without one in their own row
    for text in (
        "<td>img</td>",
        "<td>txt</td>",
        "(all branches)",
        "linear_top1",
        "41.25",
        "38.50",
        "0.4146",
        "i2t_r1",
        "61",
    ):
        assert text in page, text
    assert "| img | 41.25 |" in markdown
    # settings, and the collapse alarms of the history
    assert "resnet18" in page and "text_cnn" in page and "γ = 0.8" in page and "batch size" in page
    assert page.count("img (a): std 0.05 &lt; 0.1") == 5  # steps 20..24
    assert (
        "| 20 | 3 | img (a): std 0.05 < 0.1; txt (b): std 0.05 < 0.1 |" in markdown
    )  # epochs from 1, as in the figures
    assert "step 24, epoch 3 of 3" in markdown


def test_optional_columns_are_skipped_when_absent_and_out_dir_is_honoured(tmp_path):
    rows = history_rows(rankme=False, alarm=False)
    for row in rows:
        del row["lr/head"]
    run = make_run(tmp_path / "old_run", rows, metrics=None)
    report = write_report(run, tmp_path / "elsewhere")
    written = sorted(p.name for p in (tmp_path / "elsewhere").iterdir())
    assert written == sorted([*(f for f in FIGURES if f != "rankme.png"), "report.html", "report.md"])
    assert [f.name for f in report.figures] == [f for f in FIGURES if f != "rankme.png"]
    page = report.html.read_text()
    assert "rankme.png" not in page and "not been evaluated" in page and "no <code>collapse_alarm</code>" in page
    assert not (run / "report").exists()


def test_a_run_directory_is_read_as_data(tmp_path):
    run = make_run(tmp_path / "run", history_rows(collapse_from=20))
    record = read_run(run)
    assert record.gamma == 0.8 and record.side_label("b") == "b (txt)"
    assert list(record.alarms()["step"]) == [20, 21, 22, 23, 24]


def test_a_long_collapse_lists_its_first_alarms_and_counts_the_rest(tmp_path):
    from multivic.report.page import MAX_ALARM_ROWS, alarm_rows

    record = read_run(make_run(tmp_path / "run", history_rows(steps=200, per_epoch=50, collapse_from=101)))
    header, rows, more = alarm_rows(record)
    assert len(rows) == MAX_ALARM_ROWS and rows[0][:2] == ["101", "3"]
    assert more.startswith(f"... and {100 - MAX_ALARM_ROWS} more") and "step 200" in more
    assert record.has("a/rankme") and not record.has("c/rankme")


def test_user_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(empty) in err and "config.yaml" in err and "\n" not in err
    (empty / "config.yaml").write_text("seed: 0\n")
    assert main(["report", str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no history.csv yet" in err and "\n" not in err
    (empty / "history.csv").write_text("step,epoch,lr,loss\n")
    with pytest.raises(RunDirError, match="no logged step"):
        read_run(empty)
    (empty / "history.csv").write_text("")
    with pytest.raises(RunDirError, match="history"):
        read_run(empty)
    assert not (empty / "report").exists()


def test_an_out_folder_that_cannot_be_made_is_a_one_line_error(tmp_path, capsys):
    run = make_run(tmp_path / "run", history_rows())
    (tmp_path / "a_file").write_text("")
    assert main(["report", str(run), "--out", str(tmp_path / "a_file")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot write the report into") and "\n" not in err


def test_dollar_signs_in_names_are_text_not_tex(tmp_path):
    rows = history_rows(steps=6, per_epoch=3)
    report = write_report(make_run(tmp_path / "run $\\nope_1$", rows))
    assert len(report.figures) == len(FIGURES)


def test_without_matplotlib_the_pages_are_written_and_say_why_there_are_no_figures(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    run = make_run(tmp_path / "run", history_rows())
    report = write_report(run)
    assert report.figures == [] and sorted(p.name for p in report.out_dir.iterdir()) == ["report.html", "report.md"]
    assert "matplotlib is not installed" in report.html.read_text() and "41.25" in report.html.read_text()
    assert "matplotlib is not installed" in caplog.text


def test_end_of_run_figures_come_from_the_evaluation_arrays_and_examples(tmp_path):
    import torch

    from multivic.evaluation.examples import retrieval_examples, write_examples
    from multivic.run_dir import RunDir

    run = make_run(tmp_path / "run", history_rows())
    g = torch.Generator().manual_seed(0)
    collapsed = torch.randn(50, 1, generator=g) @ torch.randn(1, 128, generator=g) + 1e-3 * torch.randn(
        50, 128, generator=g
    )
    arrays = {}
    for name, emb in (("img", torch.randn(50, 128, generator=g)), ("txt", collapsed)):
        arrays |= {
            f"{name}/embedding_singular_values": torch.linalg.svdvals(emb.double()),
            f"{name}/representation_singular_values": torch.linalg.svdvals(torch.randn(50, 64, generator=g).double()),
            f"{name}/embedding_std": emb.double().std(0),
        }
    RunDir(run).write_eval_arrays(arrays)
    pictures = [Image.new("RGB", (40, 40), (30 * i, 90, 0)) for i in range(6)]
    index = torch.arange(6).repeat_interleave(2)
    texts = [f"caption {j}" for j in range(12)]
    emb_i, emb_t = torch.randn(6, 8, generator=g), torch.randn(12, 8, generator=g)
    write_examples(
        retrieval_examples(emb_i, emb_t, index, ("image", pictures), ("text", texts)), RunDir(run).eval_examples
    )

    report = write_report(run)
    names = [f.name for f in report.figures]
    assert names[-3:] == ["spectrum.png", "std_histogram.png", "retrieval_examples.png"]
    for name in names[-3:]:
        with Image.open(report.out_dir / name) as image:
            assert image.size[0] > 500 and image.size[1] > 300
    record = read_run(run)
    assert record.evaluated_branches() == ["img", "txt"]
    assert record.arrays["txt/embedding_singular_values"][1] < 1e-2 * record.arrays["txt/embedding_singular_values"][0]
    page = report.html.read_text()
    assert 'href="spectrum.png"' in page and 'href="retrieval_examples.png"' in page


def test_a_damaged_eval_arrays_file_is_a_one_line_error(tmp_path, capsys):
    run = make_run(tmp_path / "run", history_rows())
    (run / "eval_arrays.safetensors").write_bytes(b"\x00" * 20)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert "eval_arrays.safetensors is damaged" in err and "multivic eval" in err and "\n" not in err


def test_another_objectives_terms_and_per_side_coefficients_are_drawn(tmp_path):
    rows = history_rows()
    for row in rows:
        for term in ("invariance", "variance", "covariance"):
            del row[term]
        row |= {"on_diagonal": 3.0 - 0.1 * row["step"], "off_diagonal": 40.0 / row["step"], "variance": 0.5}
    config = {
        "model": {"branch_a": {"name": "img", "encoder": "resnet18"}, "branch_b": {"name": "txt", "encoder": "gru"}},
        "loss": {"name": "barlow_twins", "lambda_offdiag": 0.005},
        "train": {"batch_size": 64},
    }
    report = write_report(make_run(tmp_path / "bt", rows, config=config))
    assert "loss.png" in [f.name for f in report.figures]
    from multivic.report.figures import _NOT_TERMS

    record = read_run(tmp_path / "bt")
    drawn = [c for c in record.history.columns if "/" not in c and c not in _NOT_TERMS]
    assert sorted(drawn) == ["off_diagonal", "on_diagonal", "variance"]  # with its variance regulariser
    assert "barlow_twins: lambda_offdiag = 0.005" in report.markdown.read_text()

    config = {
        "loss": {"name": "vicreg", "std_coeff": [25.0, 10.0], "cov_coeff": [1.0, 2.0]},
        "train": {"batch_size": 64},
    }
    report = write_report(make_run(tmp_path / "per_side", history_rows(), config=config))
    assert "loss.png" in [f.name for f in report.figures]
    assert "μ (std_coeff) = [25, 10]" in report.markdown.read_text()
