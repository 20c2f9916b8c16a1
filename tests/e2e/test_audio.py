"""A few-step waveform–spectrogram run through the CLI on synthesised ESC-50-layout sounds."""

import json

import pytest

from multivic.cli import main
from multivic.data.builtin import write_sounds_dataset

pytestmark = pytest.mark.slow


def test_wave_spec_trains_and_evaluates_both_branches(tmp_path):
    data = write_sounds_dataset(tmp_path / "sounds", clips_per_class=5, sample_rate=8000, seconds=1.0)
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "recipes/quickstart/wave_spec.yaml",
            "--output-dir",
            str(run),
            "--no-progress",
            f"data.root={data}",
            "data.num_workers=0",
            "data.crop_seconds=0.5",
            "train.epochs=1",
            "train.batch_size=14",
            "model.branch_a.encoder_kwargs.width=8",
            "eval.linear_epochs=2",
            "eval.cross_validate=true",
        ]
    )
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    for branch in ("waveform", "spectrogram"):
        for key in ("linear_top1", "linear_top5", "knn_top1", "std_mean", "linear_top1_cv5_seen", "knn_top1_cv5_seen"):
            assert f"{branch}/{key}" in metrics
    exported = json.loads((run / "export" / "spectrogram.json").read_text())
    assert exported["encoder_kwargs"]["sample_rate"] == 8000 and exported["modality"] == "waveform"


def test_cross_validation_needs_folds(tiny_recipe, capsys):
    assert main(["train", str(tiny_recipe), "eval.cross_validate=true"]) == 2
    assert "eval.cross_validate needs fold-based data" in capsys.readouterr().err


def test_embed_a_folder_of_audio(tmp_path):
    import numpy as np

    data = write_sounds_dataset(tmp_path / "sounds", clips_per_class=5, sample_rate=8000, seconds=1.0)
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "recipes/quickstart/wave_spec.yaml",
                "--output-dir",
                str(run),
                "--no-progress",
                f"data.root={data}",
                "train.epochs=0",
                "eval.enabled=false",
                "data.crop_seconds=0.5",
            ]
        )
        == 0
    )
    out = tmp_path / "audio.npz"
    assert main(["embed", str(run), "--branch", "spectrogram", "--input", str(data / "audio"), "--out", str(out)]) == 0
    loaded = np.load(out)
    assert loaded["embeddings"].shape == (35, 512) and loaded["inputs"][0].endswith(".wav")
