"""`multivic sweep`: parsing the grid, naming its points, dry runs, bad input, and a real 2-point sweep."""

import json
import shlex
import sys
from pathlib import Path

import pandas as pd
import pytest

from multivic.cli import main
from multivic.commands import sweep as sweep_mod
from multivic.commands.sweep import (
    Sweep,
    last_error_line,
    parse_assignments,
    point_names,
    prepare_dir,
    run_point,
    split_values,
)
from multivic.config import load_config
from multivic.errors import ConfigError, RunDirError
from multivic.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[2]
ABLATION = ROOT / "recipes" / "sweeps" / "loss_ablation.yaml"


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, values",
    [
        ("0,25", ["0", "25"]),
        ("0", ["0"]),
        ("[25,10],[25,25]", ["[25,10]", "[25,25]"]),
        ("[0.2, 1.0], [0.5,1.0]", ["[0.2, 1.0]", "[0.5,1.0]"]),
        ("{a: 1, b: [2,3]},{a: 4}", ["{a: 1, b: [2,3]}", "{a: 4}"]),
        ("'a,b',c", ["'a,b'", "c"]),
        ('"x,[y",z', ['"x,[y"', "z"]),
        ("[[1,2],[3]],[4]", ["[[1,2],[3]]", "[4]"]),
        ("a,", ["a", ""]),
    ],
)
def test_values_split_on_top_level_commas_only(text, values):
    assert split_values(text) == values


@pytest.mark.parametrize("text", ["[1,2", "1]", "[1,2}", "'a,b"])
def test_unbalanced_brackets_and_quotes_are_errors(text):
    with pytest.raises(ConfigError, match="unbalanced"):
        split_values(text)


def test_several_values_make_an_axis_one_value_applies_to_every_run():
    grid, fixed = parse_assignments(
        [
            "loss.std_coeff=0,25",
            "train.epochs=2",
            "loss.std_coeff_x=[25,10],[25,25]",
            "model.branch_a.view.crop_scale=[0.2,1.0]",
        ]
    )
    assert grid == {"loss.std_coeff": ["0", "25"], "loss.std_coeff_x": ["[25,10]", "[25,25]"]}
    assert fixed == ["train.epochs=2", "model.branch_a.view.crop_scale=[0.2,1.0]"]


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["loss.std_coeff"], "not key=value"),
        (["loss.std_coeff="], "no values"),
        (["loss.std_coeff=0,,25"], "an empty value"),
        (["loss.std_coeff=0,"], "an empty value"),
        (["loss.std_coeff=0,25", "loss.std_coeff=1"], "given twice"),
        (["train.epochs=1", "train.epochs=2"], "given twice"),
        (["loss.std_coeff=0,0"], "repeats a value"),
        (["=0,1"], "config key"),
    ],
)
def test_bad_assignments_are_one_line_errors(tokens, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_assignments(tokens)
    assert "\n" not in str(info.value)


# --- names ------------------------------------------------------------------------------------


def test_points_are_the_product_in_the_order_given_named_by_the_keys_last_parts():
    points = point_names({"loss.std_coeff": ["0", "25"], "loss.cov_coeff": ["0", "1"]})
    assert [p.name for p in points] == [
        "std_coeff=0__cov_coeff=0",
        "std_coeff=0__cov_coeff=1",
        "std_coeff=25__cov_coeff=0",
        "std_coeff=25__cov_coeff=1",
    ]
    assert points[1].overrides == ["loss.std_coeff=0", "loss.cov_coeff=1"]


def test_names_are_filesystem_safe_unique_and_tell_keys_with_the_same_last_part_apart():
    points = point_names({"model.branch_a.expander": ["64-64", "128-128"], "model.branch_b.expander": ["64-64"]})
    assert points[0].name == "branch_a.expander=64-64__branch_b.expander=64-64"
    names = [p.name for p in point_names({"x.crop": ["[0.2, 1.0]", "[0.5,1.0]"]})]
    assert names == ["crop=0.2-1.0", "crop=0.5-1.0"]
    names = [p.name for p in point_names({"data.root": ["/data/a b", "/data/a_b", "'q'", "x" * 300]})]
    assert len(set(names)) == 4 and all("/" not in n and " " not in n and len(n) <= 200 for n in names)
    assert names[0] != names[1] and names[0].startswith("root=_data_a") and names[2] == "root=q"


# --- dry run and bad input --------------------------------------------------------------------


def test_dry_run_prints_one_quoted_train_command_per_point_and_writes_nothing(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert (
        main(
            [
                "sweep",
                str(tiny_recipe),
                "--output-dir",
                str(out),
                "--dry-run",
                "--no-progress",
                "loss.std_coeff=0,25",
                "model.branch_a.view.crop_scale=[0.2,1.0],[0.5,1.0]",
                "train.epochs=2",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and not out.exists()
    argv = [shlex.split(line) for line in lines]
    assert argv[1] == [
        "multivic",
        "train",
        str(tiny_recipe),
        "--output-dir",
        str(out / "std_coeff=0__crop_scale=0.5-1.0"),
        "--no-progress",
        "train.epochs=2",
        "loss.std_coeff=0",
        "model.branch_a.view.crop_scale=[0.5,1.0]",
    ]
    assert "'model.branch_a.view.crop_scale=[0.5,1.0]'" in lines[1]  # quoted for a shell


def test_the_shipped_loss_ablation_is_the_four_combinations_over_the_image_quick_start(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "ablation"
    assert main(["sweep", "recipes/sweeps/loss_ablation.yaml", "--output-dir", str(out), "--dry-run"]) == 0
    argv = [shlex.split(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [a[:3] for a in argv] == [["multivic", "train", "recipes/quickstart/image_image.yaml"]] * 4
    assert [a[4] for a in argv] == [
        str(out / n)
        for n in (
            "std_coeff=0__cov_coeff=0",
            "std_coeff=0__cov_coeff=1",
            "std_coeff=25__cov_coeff=0",
            "std_coeff=25__cov_coeff=1",
        )
    ]
    # The 8-epoch settings the README's ablation table was measured with, then the grid point.
    pinned = ["train.epochs=8", "optim.base_lr=0.002"]
    assert argv[0][5:] == [*pinned, "loss.std_coeff=0", "loss.cov_coeff=0"]
    assert argv[3][5:] == [*pinned, "loss.std_coeff=25", "loss.cov_coeff=1"]
    assert not out.exists()


def test_a_sweep_file_takes_more_axes_and_overrides_from_the_command_line(tmp_path, tiny_recipe, capsys):
    (tmp_path / "sweeps").mkdir()
    spec = tmp_path / "sweeps" / "s.yaml"
    spec.write_text(
        f"recipe: ../{tiny_recipe.name}\ngrid: {{loss.std_coeff: [0, 2.5], data.image_size: [16]}}\n"
        "overrides: [train.epochs=2]\n"
    )
    assert main(["sweep", str(spec), "--dry-run", "seed=0,1", "eval.knn_k=5"]) == 0
    argv = [shlex.split(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert len(argv) == 4 and Path(argv[0][2]).resolve() == tiny_recipe.resolve()
    assert argv[3][4] == str(Path("runs") / "s" / "std_coeff=2.5__image_size=16__seed=1")
    assert argv[3][5:] == ["train.epochs=2", "eval.knn_k=5", "loss.std_coeff=2.5", "data.image_size=16", "seed=1"]
    assert main(["sweep", str(spec), "--dry-run", "loss.std_coeff=1,2"]) == 2
    assert "given twice" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["no/such/recipe.yaml", "loss.std_coeff=0,25"], "not found"),
        (["{recipe}", "loss.std_coeff"], "not key=value"),
        (["{recipe}", "loss.std_coeff="], "no values"),
        (["{recipe}", "loss.std_coeff=0,25", "loss.std_coeff=1,2"], "given twice"),
        (["{recipe}", "loss.std_coeff=0,25", "train.nonsense=1"], "train.nonsense"),
        (["{recipe}", "loss.std_coeff=0,oops"], "std_coeff=oops"),
        (["{recipe}", "train.epochs=3"], "nothing to sweep"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(args, message, tiny_recipe, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = [a.replace("{recipe}", str(tiny_recipe)) for a in args]
    assert main(["sweep", *args, "--output-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_a_folder_of_another_sweep_or_of_something_else_is_refused(tmp_path, tiny_recipe):
    def sweep(grid):
        return Sweep(recipe=str(tiny_recipe), grid=grid, points=point_names(grid))

    out = tmp_path / "sweep"
    prepare_dir(out, sweep({"loss.std_coeff": ["0", "25"]}))
    record = json.loads((out / "sweep.json").read_text())
    assert record["grid"] == {"loss.std_coeff": ["0", "25"]} and record["points"][1]["name"] == "std_coeff=25"
    prepare_dir(out, sweep({"loss.std_coeff": ["0", "25"]}))  # the same sweep: resumed
    with pytest.raises(RunDirError, match="use another --output-dir, or the same grid to resume") as info:
        prepare_dir(out, sweep({"loss.std_coeff": ["0", "1"]}))
    assert "loss.std_coeff=0,25" in str(info.value) and "loss.std_coeff=0,1" in str(info.value)
    assert json.loads((out / "sweep.json").read_text()) == record
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="holds no sweep.json"):
        prepare_dir(other, sweep({"loss.std_coeff": ["0", "25"]}))


# --- running ----------------------------------------------------------------------------------


def test_a_run_that_fails_gives_its_exit_code_and_its_error_line(capfd):
    code, line = run_point(
        [
            sys.executable,
            "-c",
            "import sys; print('hello'); print('error: boom: fix it', file=sys.stderr); "
            "print('trailing', file=sys.stderr); sys.exit(3)",
        ]
    )
    assert (code, line) == (3, "error: boom: fix it")
    assert "hello" in capfd.readouterr().out  # streamed through
    assert last_error_line(b"step 1\rstep 2\r\nTraceback\n  ValueError: x\n") == "ValueError: x"


def test_a_failed_point_is_reported_the_sweep_goes_on_and_exits_1(tiny_recipe, tmp_path, capsys, monkeypatch):
    calls = []

    def fake_run(cmd):
        calls.append(cmd[cmd.index("--output-dir") + 1])
        return (1, "error: the data is gone") if len(calls) == 1 else (0, "")

    monkeypatch.setattr(sweep_mod, "run_point", fake_run)
    out = tmp_path / "sweep"
    assert main(["sweep", str(tiny_recipe), "--output-dir", str(out), "loss.std_coeff=0,25"]) == 1
    err = capsys.readouterr().err
    assert calls == [str(out / "std_coeff=0"), str(out / "std_coeff=25")]
    assert "std_coeff=0 failed (exit 1): error: the data is gone" in err
    assert err.strip().splitlines()[-1] == (
        "error: 1 of 2 points failed: std_coeff=0 (exit 1); fix and run the same command to resume"
    )


@pytest.mark.slow
def test_a_two_point_sweep_trains_compares_and_resumes(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        str(tiny_recipe),
        "--output-dir",
        str(out),
        "--no-progress",
        "loss.std_coeff=0,25",
        "eval.linear_epochs=1",
    ]
    assert main(args) == 0
    printed = capsys.readouterr()
    names = ["std_coeff=0", "std_coeff=25"]
    for name in names:
        assert (out / name / "metrics.json").is_file() and (out / name / "export" / "tiny.safetensors").is_file()
    record = json.loads((out / "sweep.json").read_text())
    assert [p["name"] for p in record["points"]] == names and record["overrides"] == ["eval.linear_epochs=1"]

    table = pd.read_csv(out / "compare.csv", index_col="run")
    assert list(table.index) == names
    assert list(table.columns)[0] == "loss.std_coeff"  # the only varying key, then the metrics
    assert all(c.startswith("tiny/") for c in list(table.columns)[1:]) and "tiny/linear_top1" in table.columns
    assert list(table["loss.std_coeff"]) == [0.0, 25.0]
    header = printed.out.strip().splitlines()[-4]  # the Markdown table (header, rule, 2 rows) ends the output
    assert "| run" in header and "loss.std_coeff" in header

    stamps = {n: (out / n / "metrics.json").stat().st_mtime_ns for n in names}
    assert main(args) == 0  # again: both points are finished, only the comparison is made again
    err = capsys.readouterr().err
    assert err.count("finished before, skipped") == 2
    assert {n: (out / n / "metrics.json").stat().st_mtime_ns for n in names} == stamps

    # A longer train.epochs (a change a run may resume with) makes a point unfinished again.
    cfg = load_config(tiny_recipe, ["loss.std_coeff=0", "eval.linear_epochs=1"])
    assert sweep_mod.is_finished(RunDir(out / "std_coeff=0"), cfg)
    longer = load_config(tiny_recipe, ["loss.std_coeff=0", "eval.linear_epochs=1", "train.epochs=2"])
    assert not sweep_mod.is_finished(RunDir(out / "std_coeff=0"), longer)
    (out / "std_coeff=0" / "metrics.json").unlink()
    assert not sweep_mod.is_finished(RunDir(out / "std_coeff=0"), cfg)
