"""`multivic compare`: the config keys that differ and the final metrics, as Markdown and CSV."""

import json

import pandas as pd
import pytest
import yaml

from multivic.cli import main
from multivic.commands.compare import compare_runs, flatten, to_markdown
from multivic.errors import MultivicError, RunDirError

CONFIG = {
    "seed": 0,
    "model": {
        "branch_a": {
            "encoder": "resnet18",
            "expander": "512-512-128",
            "encoder_kwargs": {},
            "view": {"crop_scale": [0.4, 1.0]},
        }
    },
    "loss": {"name": "vicreg", "sim_coeff": 25.0, "std_coeff": 25.0, "cov_coeff": 1.0},
    "train": {"epochs": 2, "batch_size": 128, "clip_grad_norm": None},
}


def _run(root, name, metrics=None, **loss):
    run = root / name
    run.mkdir()
    config = json.loads(json.dumps(CONFIG))
    config["loss"].update(loss)
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_flatten_joins_nested_keys_with_dots_and_writes_lists_as_text():
    flat = flatten(CONFIG)
    assert flat["model.branch_a.view.crop_scale"] == "[0.4, 1.0]"
    assert flat["loss.std_coeff"] == 25.0 and flat["train.clip_grad_norm"] is None
    assert flat["model.branch_a.encoder_kwargs"] == "{}"


def test_two_runs_that_differ_in_one_key_show_only_that_key_and_the_metrics(tmp_path, capsys):
    full = _run(tmp_path, "full", {"r18/linear_top1": 21.6666, "r18/std_mean": 0.4146})
    inv = _run(
        tmp_path, "inv_only", {"r18/linear_top1": 4.5, "r18/std_mean": 0.012, "r18/knn_top1": 3.0}, std_coeff=0.0
    )
    out = tmp_path / "tables" / "cmp.csv"

    assert main(["compare", str(full), str(inv), "--csv", str(out)]) == 0
    printed = capsys.readouterr().out
    lines = printed.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    # only the differing key, then every metric (the union; the leading ones first)
    assert header == ["run", "loss.std_coeff", "r18/linear_top1", "r18/knn_top1", "r18/std_mean"]
    assert set(lines[1]) <= set("|-: ") and len(lines) == 4
    assert lines[2].split("|")[1].strip() == "full" and "21.67" in lines[2] and "0.4146" in lines[2]
    full_cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert full_cells[3] == ""  # the full run has no knn_top1: empty, not 0 or nan

    table = pd.read_csv(out, index_col="run")
    assert list(table.index) == ["full", "inv_only"]
    assert list(table.columns) == header[1:]
    assert table.loc["full", "loss.std_coeff"] == 25.0 and table.loc["inv_only", "loss.std_coeff"] == 0.0
    assert table.loc["full", "r18/linear_top1"] == pytest.approx(21.6666)  # full precision in the CSV
    assert pd.isna(table.loc["full", "r18/knn_top1"]) and table.loc["inv_only", "r18/knn_top1"] == 3.0


def test_keys_one_run_lacks_count_as_differing_and_a_run_without_metrics_is_empty(tmp_path):
    a = _run(tmp_path, "a", {"x/knn_top1": 1.0})
    b = _run(tmp_path, "b")
    config = yaml.safe_load((b / "config.yaml").read_text())
    config["model"]["branch_a"]["view"]["crop_scale"] = [0.2, 1.0]
    config["loss"]["variance_convention"] = "paper"
    (b / "config.yaml").write_text(yaml.safe_dump(config))
    table = compare_runs([a, b])
    assert list(table.columns) == ["model.branch_a.view.crop_scale", "loss.variance_convention", "x/knn_top1"]
    assert table.loc["b", "model.branch_a.view.crop_scale"] == "[0.2, 1.0]"
    assert pd.isna(table.loc["a", "loss.variance_convention"]) and pd.isna(table.loc["b", "x/knn_top1"])
    assert "| a   |" in to_markdown(table)


def test_runs_with_the_same_folder_name_are_told_apart_by_their_paths(tmp_path):
    (tmp_path / "x").mkdir(), (tmp_path / "y").mkdir()
    a, b = _run(tmp_path / "x", "run"), _run(tmp_path / "y", "run", std_coeff=1.0)
    assert list(compare_runs([a, b]).index) == [str(a), str(b)]


def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = _run(tmp_path, "run")
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    assert main(["compare", str(run), str(not_a_run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(not_a_run) in err and "config.yaml" in err and "\n" not in err
    assert main(["compare", str(run)]) == 2
    assert "at least two" in capsys.readouterr().err
    with pytest.raises(RunDirError, match="twice"):
        compare_runs([run, tmp_path / "." / "run"])
    (not_a_run / "config.yaml").write_text("- just\n- a list\n")
    with pytest.raises(RunDirError, match="mapping"):
        compare_runs([run, not_a_run])
    (not_a_run / "config.yaml").write_text("seed: 0\n")
    (not_a_run / "metrics.json").write_text("{not json")
    with pytest.raises(RunDirError, match="metrics.json"):
        compare_runs([run, not_a_run])
    with pytest.raises(MultivicError):
        compare_runs([])
    assert not (tmp_path / "compare.csv").exists()  # nothing written when the table cannot be made


def test_reading_a_config_imports_nothing_it_names(tmp_path, monkeypatch):
    """A run directory from elsewhere is data: its imports: and encoder paths are never imported."""
    import sys

    a = _run(tmp_path, "a")
    b = _run(tmp_path, "b")
    config = yaml.safe_load((b / "config.yaml").read_text())
    config["imports"] = ["evil_module_for_compare_test"]
    config["model"]["branch_a"]["encoder"] = "evil_module_for_compare_test:factory"
    (b / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "evil_module_for_compare_test.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    table = compare_runs([a, b])
    assert "evil_module_for_compare_test" not in sys.modules
    assert table.loc["b", "imports"] == '["evil_module_for_compare_test"]'


def test_compare_csv_cells_never_start_like_a_spreadsheet_formula(tmp_path):
    """A run directory from elsewhere whose config.yaml holds =HYPERLINK(...) must not become a
    live formula in compare.csv; numbers (negative ones too) stay numbers."""
    a = _run(tmp_path, "a", {"img/linear_top1": -1.5})
    b = _run(tmp_path, "b", {"img/linear_top1": 2.0})
    config = yaml.safe_load((b / "config.yaml").read_text())
    config["model"]["branch_a"]["encoder"] = '=HYPERLINK("http://evil","x")'
    (b / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "compare.csv"
    assert main(["compare", str(a), str(b), "--csv", str(out)]) == 0
    table = pd.read_csv(out)
    cells = [str(v) for v in table.to_numpy().ravel()]
    assert '\'=HYPERLINK("http://evil","x")' in cells
    assert not any(c.startswith("=") for c in cells)
    assert -1.5 in table["img/linear_top1"].tolist()
