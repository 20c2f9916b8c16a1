"""An unreadable input (a corrupt image, an empty audio file) met by a DataLoader worker of
`multivic embed` or `multivic eval` is the one-line error of the main process (exit 2), not a
traceback re-raised from the worker."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from multivic.branch import build_branch
from multivic.cli import main
from multivic.export import export_branch
from multivic.modalities import create_modality
from tests.helpers.recipes import TINY_RECIPE


def _export(folder: Path) -> None:
    branch = build_branch("tiny", "resnet18", {}, "8-8")
    branch.preprocess = create_modality("image", {"image_size": 16})
    export_branch(branch, folder, "resnet18", {})


def _corrupt(path: Path) -> Path:
    path.write_bytes(os.urandom(2048))  # random bytes under an image's name
    return path


def _one_error_line(capsys, code: int) -> str:
    assert code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "worker" not in captured.err.lower()
    return lines[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_embed_names_an_unreadable_image_in_one_line(tiny_images, tmp_path, capsys, workers):
    _export(tmp_path / "export")
    inputs = tmp_path / "inputs"
    shutil.copytree(tiny_images / "val" / "circle", inputs)
    bad = _corrupt(inputs / "zz_broken.png")
    capsys.readouterr()
    code = main(
        [
            "embed",
            str(tmp_path / "export"),
            "--branch",
            "tiny",
            "--input",
            str(inputs),
            "--out",
            str(tmp_path / "e.npy"),
            "--num-workers",
            str(workers),
            "--batch-size",
            "2",
        ]
    )
    line = _one_error_line(capsys, code)
    assert line.startswith(f"error: cannot read image {bad}: "), line
    assert not (tmp_path / "e.npy").exists()


@pytest.fixture
def broken_val_run(tiny_images, tmp_path):
    """A run directory (config + export, no training) over a copy of the tiny images whose val
    split holds one corrupt file; returns the run and that file."""
    data = tmp_path / "data"
    shutil.copytree(tiny_images, data)
    bad = _corrupt(data / "val" / "square" / "zz_broken.png")
    run = tmp_path / "run"
    run.mkdir()
    recipe = TINY_RECIPE.replace("root: null", f"root: {data}").replace("expander: 64-64", "expander: 8-8")
    (run / "config.yaml").write_text(recipe.replace("linear_epochs: 5", "linear_epochs: 1"))
    _export(run / "export")
    return run, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_eval_names_an_unreadable_image_in_one_line(broken_val_run, capsys, workers):
    run, bad = broken_val_run
    capsys.readouterr()
    line = _one_error_line(capsys, main(["eval", str(run), f"data.num_workers={workers}", "data.strict=true"]))
    assert line.startswith(f"error: cannot read image {bad}: "), line


def test_eval_leaves_an_unreadable_image_out_of_a_classification_split_and_says_so(broken_val_run, caplog):
    run, bad = broken_val_run
    assert main(["eval", str(run), "data.num_workers=2"]) == 0
    assert f"evaluation left out an unreadable sample: cannot read image {bad}" in caplog.text


@pytest.mark.parametrize(
    "broken,message",
    [
        (lambda p: p.write_bytes(b""), "cannot read audio file {}: "),  # a 0-byte file
        (lambda p: soundfile.write(str(p), np.zeros(0, dtype="float32"), 8000), "audio file {} is empty (0 samples)"),
    ],
)
def test_embed_names_an_unreadable_audio_file_in_one_line(tmp_path, capsys, broken, message):
    branch = build_branch("wave", "resnet18_1d", {"width": 4}, "8-8")
    branch.preprocess = create_modality("waveform", {"sample_rate": 8000, "crop_seconds": 0.25})
    export_branch(branch, tmp_path / "export", "resnet18_1d", {"width": 4})
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(3):
        soundfile.write(
            str(inputs / f"clip{i}.wav"), np.random.default_rng(i).normal(size=4000).astype("float32") * 0.1, 8000
        )
    bad = inputs / "zz_broken.wav"
    broken(bad)
    capsys.readouterr()
    code = main(
        [
            "embed",
            str(tmp_path / "export"),
            "--branch",
            "wave",
            "--input",
            str(inputs),
            "--out",
            str(tmp_path / "e.npy"),
            "--num-workers",
            "2",
            "--batch-size",
            "2",
        ]
    )
    line = _one_error_line(capsys, code)
    assert line.startswith("error: " + message.format(bad)), line


def test_the_workers_stop_with_the_error(broken_val_run, monkeypatch):
    """The failed loop shuts its workers down itself: left to the garbage collector (the error's
    traceback holds the DataLoader iterator), they were stopped during a later evaluation of the
    same process, where a queue thread failed and printed a traceback of its own."""
    import gc
    import threading

    failures = []
    monkeypatch.setattr(
        threading, "excepthook", lambda args: failures.append(f"{args.thread.name}: {args.exc_value!r}")
    )
    run, _ = broken_val_run
    for _ in range(3):  # as a notebook would, evaluating again in one process
        assert main(["eval", str(run), "data.num_workers=2", "eval.linear_epochs=1", "data.strict=true"]) == 2
        gc.collect()
    assert failures == []
