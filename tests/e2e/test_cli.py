"""End-to-end runs through the CLI on a tiny on-disk image set."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from multivic.cli import main

pytestmark = pytest.mark.slow


def _train(recipe, out, *overrides):
    return main(["train", str(recipe), "--output-dir", str(out), "--no-progress", *overrides])


def _history_steps(run):
    with (run / "history.csv").open() as f:
        return [int(r["step"]) for r in csv.DictReader(f)]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_train_writes_a_complete_run_directory(tiny_recipe, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(tiny_recipe, run) == 0
    printed = capsys.readouterr().out
    assert "linear_top1" in printed and "tiny" in printed
    assert (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "LATEST").read_text().strip() == "epoch_0001"
    assert _history_steps(run) == [1, 2, 3, 4]  # 72 images / batch 16, last incomplete batch dropped
    with (run / "history.csv").open() as f:
        assert {"step", "epoch", "lr", "loss", "invariance", "variance", "covariance"} <= set(next(csv.DictReader(f)))
    meta = json.loads((run / "export" / "tiny.json").read_text())
    assert meta["encoder"] == "resnet18" and meta["expander"] == "64-64" and meta["modality"] == "image"
    assert load_file(str(run / "export" / "tiny.safetensors"))
    assert {"report.html", "report.md", "loss.png", "std.png", "rankme.png"} <= {
        p.name for p in (run / "report").iterdir()
    }
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("tiny/linear_top1", "tiny/linear_top5", "tiny/knn_top1", "tiny/std_mean"):
        assert 0 <= metrics[key] <= 100

    # multivic eval recomputes the same numbers from the exported branch.
    assert main(["eval", str(run)]) == 0
    again = json.loads((run / "metrics.json").read_text())
    assert again["tiny/knn_top1"] == metrics["tiny/knn_top1"]
    assert again["tiny/std_mean"] == pytest.approx(metrics["tiny/std_mean"], rel=1e-6)


def test_resume_after_a_kill_continues_at_the_right_step_bitwise(tiny_recipe, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert _train(tiny_recipe, straight, "train.epochs=2", "train.keep_checkpoints=2") == 0
    assert sorted(p.name for p in (straight / "checkpoints").iterdir()) == ["LATEST", "epoch_0001", "epoch_0002"]
    # The state a kill during epoch 2 leaves: LATEST names epoch 1, history already holds
    # rows of epoch 2 (logged after the checkpoint), no export yet.
    shutil.copytree(straight, killed)
    shutil.rmtree(killed / "checkpoints" / "epoch_0002")
    shutil.rmtree(killed / "export")
    (killed / "checkpoints" / "LATEST").write_text("epoch_0001\n")
    assert _history_steps(killed) == list(range(1, 9))

    assert _train(tiny_recipe, killed, "train.epochs=2", "train.keep_checkpoints=2") == 0
    assert _history_steps(killed) == list(range(1, 9))  # rows 5-8 dropped, then logged again
    a = load_file(str(straight / "export" / "tiny.safetensors"))
    b = load_file(str(killed / "export" / "tiny.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    with (straight / "history.csv").open() as f1, (killed / "history.csv").open() as f2:
        rows1, rows2 = list(csv.DictReader(f1)), list(csv.DictReader(f2))
    assert [r["loss"] for r in rows1] == [r["loss"] for r in rows2]


def test_zero_epochs_evaluates_the_untrained_model(tiny_recipe, tmp_path):
    run = tmp_path / "init"
    assert _train(tiny_recipe, run, "train.epochs=0") == 0
    assert not (run / "checkpoints").exists()
    assert "tiny/linear_top1" in json.loads((run / "metrics.json").read_text())


def test_console_script_lists_encoders():
    script = Path(sys.executable).with_name("multivic")
    proc = subprocess.run([str(script), "encoders"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "resnet50" in proc.stdout and "image" in proc.stdout and "2048" in proc.stdout


def _expect_error(capsys, code, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err and err[-1].startswith("error: "), err
    assert "Traceback" not in "\n".join(err)
    import re

    assert re.search(pattern, err[-1]), err[-1]


@pytest.fixture
def finished_run(tiny_recipe, tmp_path):
    run = tmp_path / "existing"
    assert _train(tiny_recipe, run, "train.epochs=0") == 0
    return run


@pytest.mark.parametrize(
    "overrides,pattern",
    [
        (["data.root=/nonexistent/data"], r"data root /nonexistent/data does not exist"),
        (["train.batch_size=1"], r"train.batch_size must be >= 2"),
        (
            ["model.branch_a.encoder=resnet81", "model.branch_b.encoder=resnet81"],
            r"unknown encoder 'resnet81'.*Known encoders",
        ),
        (["train.epoch=3"], r"unknown config key 'train.epoch'"),
    ],
)
def test_bad_input_is_one_line_and_leaves_the_run_dir_intact(
    tiny_recipe, tmp_path, finished_run, capsys, overrides, pattern
):
    before = _snapshot(finished_run)
    capsys.readouterr()
    # Against a fresh directory: the error itself...
    _expect_error(capsys, _train(tiny_recipe, tmp_path / "fresh", *overrides), pattern)
    assert not (tmp_path / "fresh").exists()
    # ...and against an existing run: still an error, and nothing in it changed.
    code = _train(tiny_recipe, finished_run, *overrides)
    assert code == 2 and "error: " in capsys.readouterr().err
    assert _snapshot(finished_run) == before


def test_empty_class_folder(tiny_recipe, tiny_images, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_images, data)
    (data / "train" / "empty_class").mkdir()
    _expect_error(
        capsys, _train(tiny_recipe, tmp_path / "r", f"data.root={data}"), r"class folder .*empty_class has no images"
    )


@pytest.mark.parametrize("workers", [0, 1])
def test_a_class_of_unreadable_images_stops_the_run_naming_the_files(
    tiny_recipe, tiny_images, tmp_path, capsys, workers
):
    data = tmp_path / "data"
    shutil.copytree(tiny_images, data)
    for f in (data / "train" / "circle").glob("*.png"):
        f.write_bytes(b"\x89PNG broken")
    code = _train(tiny_recipe, tmp_path / "r", f"data.root={data}", f"data.num_workers={workers}")
    _expect_error(
        capsys, code, r"of the 72 training samples are unreadable this epoch, more than data.max_bad_fraction=0.01"
    )


def test_one_unreadable_image_is_skipped_and_counted(tiny_recipe, tiny_images, tmp_path, caplog):
    data = tmp_path / "data"
    shutil.copytree(tiny_images, data)
    broken = sorted((data / "train" / "circle").glob("*.png"))[0]
    broken.write_bytes(b"\x89PNG broken")
    assert (
        _train(tiny_recipe, tmp_path / "r", f"data.root={data}", "data.num_workers=2", "data.max_bad_fraction=0.05")
        == 0
    )
    assert (
        f"skipped an unreadable training sample (replaced by the next one): cannot read image {broken}" in caplog.text
    )
    assert f"evaluation left out an unreadable sample: cannot read image {broken}" in caplog.text
    with (tmp_path / "r" / "history.csv").open() as f:
        assert list(csv.DictReader(f))[-1]["bad_samples"] == "1"


def test_strict_data_stops_on_the_first_unreadable_image(tiny_recipe, tiny_images, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_images, data)
    broken = sorted((data / "train" / "circle").glob("*.png"))[0]
    broken.write_bytes(b"\x89PNG broken")
    code = _train(tiny_recipe, tmp_path / "r", f"data.root={data}", "data.num_workers=2", "data.strict=true")
    _expect_error(capsys, code, rf"unreadable training sample: cannot read image {broken}.*data.strict=true")


@pytest.mark.parametrize("where", ["file", "under_file"])
def test_an_output_dir_that_cannot_be_a_folder_is_refused_before_anything_runs(tiny_recipe, tmp_path, capsys, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if where == "file" else blocker / "run"
    _expect_error(capsys, _train(tiny_recipe, out), r"--output-dir .*blocker.* (is an existing file|is a file)")
    assert blocker.read_text() == "not a folder"


def test_debug_shows_the_traceback(tiny_recipe, tmp_path):
    from multivic.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "train", str(tiny_recipe), "--output-dir", str(tmp_path / "d"), "train.batch_size=1"])


def test_other_recipe_in_existing_run_dir_is_refused(tiny_recipe, finished_run, capsys):
    before = _snapshot(finished_run)
    _expect_error(capsys, _train(tiny_recipe, finished_run, "optim.base_lr=0.5"), r"was made with optim.base_lr=0.004")
    assert _snapshot(finished_run) == before


def test_two_processes_train_through_accelerate_launch(tiny_recipe, tmp_path):
    """The trainer on 2 CPU processes (gloo): global batch split, loss gathered, one history."""
    run = tmp_path / "ddp"
    launcher = Path(sys.executable).with_name("accelerate")
    cmd = [
        str(launcher),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "multivic.cli",
        "train",
        str(tiny_recipe),
        "--output-dir",
        str(run),
        "--no-progress",
        "train.cpu=true",
        "eval.linear_epochs=1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoint = run / "checkpoints" / "epoch_0001"
    assert (checkpoint / "rng_0.pt").is_file() and (checkpoint / "rng_1.pt").is_file()  # each process's RNGs
    assert _history_steps(run) == [1, 2, 3, 4]  # global batch 16 = 2 × 8, as on one process
    assert "tiny/linear_top1" in json.loads((run / "metrics.json").read_text())


def test_embed_writes_vectors_for_a_folder_of_images(tiny_recipe, tiny_images, tmp_path, capsys):
    import numpy as np
    import pandas as pd

    from multivic import load_branch
    from multivic.modalities.image import image_eval_view, load_rgb

    run = tmp_path / "run"
    assert _train(tiny_recipe, run, "train.epochs=0", "eval.enabled=false") == 0
    folder = tiny_images / "val"
    assert main(["embed", str(run), "--branch", "tiny", "--input", str(folder), "--out", str(tmp_path / "e.npz")]) == 0
    data = np.load(tmp_path / "e.npz")
    assert data["embeddings"].shape == (24, 512) and len(data["inputs"]) == 24
    first = sorted(p for p in folder.rglob("*.png"))[0]
    assert data["inputs"][0] == str(first.relative_to(folder))
    branch = load_branch(run, "tiny")
    with torch.no_grad():
        expected = branch.encode(image_eval_view(16)(load_rgb(first))[None])[0]
    assert np.allclose(data["embeddings"][0], expected.numpy(), atol=1e-5)

    assert (
        main(
            [
                "embed",
                str(run),
                "--branch",
                "tiny",
                "--input",
                str(folder),
                "--out",
                str(tmp_path / "e.parquet"),
                "--output",
                "embedding",
            ]
        )
        == 0
    )
    frame = pd.read_parquet(tmp_path / "e.parquet")
    assert list(frame.columns) == ["input", "embedding"] and len(frame["embedding"][0]) == 64

    capsys.readouterr()
    _expect_error(
        capsys,
        main(["embed", str(run), "--branch", "tiny", "--input", str(folder), "--out", str(tmp_path / "e.csv")]),
        r"unknown format '.csv'",
    )
    _expect_error(
        capsys,
        main(["embed", str(run), "--branch", "nope", "--input", str(folder), "--out", str(tmp_path / "e.npy")]),
        r"no exported branch 'nope' .* exported branches: tiny",
    )


def test_a_copied_export_folder_embeds_alone(tiny_recipe, tiny_images, tmp_path):
    """The export records its input pipeline: no run directory, config or flags are needed."""
    import shutil

    import numpy as np

    from multivic import load_branch

    run = tmp_path / "run"
    assert _train(tiny_recipe, run, "train.epochs=0", "eval.enabled=false") == 0
    meta = json.loads((run / "export" / "tiny.json").read_text())
    assert meta["preprocess"] == {"modality": "image", "options": {"image_size": 16}}
    copied = tmp_path / "elsewhere"
    shutil.copytree(run / "export", copied)
    shutil.rmtree(run)
    branch = load_branch(copied, "tiny")
    assert branch.preprocess.image_size == 16
    out = tmp_path / "e.npy"
    assert main(["embed", str(copied), "--branch", "tiny", "--input", str(tiny_images / "val"), "--out", str(out)]) == 0
    assert np.load(out).shape == (24, 512)
    # A branch name cannot leave the export folder.
    assert (
        main(
            [
                "embed",
                str(copied),
                "--branch",
                "../elsewhere/tiny",
                "--input",
                str(tiny_images / "val"),
                "--out",
                str(tmp_path / "x.npy"),
            ]
        )
        == 2
    )


def test_a_batch_larger_than_the_data_is_refused_before_the_run_dir_exists(tiny_recipe, tmp_path, capsys):
    run = tmp_path / "too_big"
    _expect_error(
        capsys,
        _train(tiny_recipe, run, "train.batch_size=4096"),
        r"fewer than train.batch_size=4096: lower the batch size",
    )
    assert not run.exists()
    assert _train(tiny_recipe, run, "train.epochs=0") == 0  # the corrected command is not refused


def test_eval_of_a_weights_file_refuses_incomplete_or_mixed_arguments_in_one_line(tiny_recipe, tmp_path, capsys):
    run = tmp_path / "run"
    cases = {
        ("eval",): "give a RUN_DIR, or --recipe",
        ("eval", str(run), "--encoder", "resnet18"): "--encoder evaluates an encoder on a recipe's data: add --recipe",
        ("eval", str(run), "--recipe", str(tiny_recipe), "--encoder", "resnet18"): "not both",
        ("eval", "--recipe", str(tiny_recipe), "--weights", "w.pt"): "add --encoder NAME",
        (
            "eval",
            "--recipe",
            str(tiny_recipe),
            "--encoder",
            "resnet18",
            "--encoder-kwargs",
            "small_stem",
        ): "neither a JSON object nor key=value",
        ("eval", "--recipe", str(tiny_recipe), "--encoder", "resnet18", "--encoder-kwargs", "{bad"): "not valid JSON",
        (
            "eval",
            "--recipe",
            str(tiny_recipe),
            "--encoder",
            "resnet18",
            "--encoder-kwargs",
            "depth=3",
            "--weights",
            "w.pt",
        ): "does not take 'depth'",
        (
            "eval",
            "--recipe",
            str(tiny_recipe),
            "--encoder",
            "resnet18",
            "--weights",
            str(tmp_path / "none.pt"),
        ): "not found",
    }
    for argv, words in cases.items():
        assert main(list(argv)) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], (argv, err)
