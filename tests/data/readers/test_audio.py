"""Audio: reading, resampling, cropping, views, the ESC-50 and CSV layouts, bad input."""

import logging
import os
import shutil

import numpy as np
import pytest
import soundfile
import torch

from multivic import create_encoder
from multivic.config import load_config
from multivic.data.builtin import SOUND_CLASSES, write_sounds_dataset
from multivic.data.readers.audio_folder import LabelledAudio, csv_audio_files, esc50_files
from multivic.errors import ConfigError, DataError
from multivic.modalities.waveform import audio_eval_view, audio_train_view, crop_or_pad, load_mono


@pytest.fixture(scope="module")
def sounds(tmp_path_factory):
    return write_sounds_dataset(tmp_path_factory.mktemp("sounds"), clips_per_class=5, sample_rate=8000, seconds=1.0)


def test_resampling_and_mixing_to_mono(tmp_path):
    t = np.arange(16000) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1).astype(np.float32)
    for ext in ("wav", "flac", "ogg"):
        soundfile.write(tmp_path / f"a.{ext}", stereo, 16000)
        wave = load_mono(tmp_path / f"a.{ext}", 8000)
        assert wave.dtype == torch.float32 and wave.dim() == 1
        assert abs(wave.shape[0] - 8000) <= 1
        assert 0.3 < wave.abs().max() < 0.6  # the two channels averaged


def test_crop_or_pad():
    x = torch.arange(10.0)
    assert torch.equal(crop_or_pad(x, 4), torch.tensor([3.0, 4.0, 5.0, 6.0]))  # centre
    assert torch.equal(crop_or_pad(x, 4, start=0), x[:4])
    padded = crop_or_pad(x, 13)
    assert padded.shape == (13,) and torch.equal(padded[10:], torch.zeros(3))


def test_views():
    torch.manual_seed(0)
    wave = torch.randn(16000)
    view = audio_train_view(8000, 0.5)
    a, b = view(wave), view(wave)
    assert a.shape == b.shape == (4000,) and not torch.equal(a, b)
    short = view(torch.randn(1000))
    assert short.shape == (4000,)
    ev = audio_eval_view(8000, 0.5)
    assert torch.equal(ev(wave), wave[6000:10000])


def test_esc50_fold_split(sounds):
    train, classes = esc50_files(sounds, "train", 5)
    val, _ = esc50_files(sounds, "val", 5)
    assert classes == list(SOUND_CLASSES)
    assert len(train) == 4 * len(SOUND_CLASSES) and len(val) == len(SOUND_CLASSES)
    assert all(p.name.startswith("5-") for p, _ in val) and not any(p.name.startswith("5-") for p, _ in train)
    ds = LabelledAudio(val, classes, 8000, audio_eval_view(8000, 0.5))
    x, y = ds[0]
    assert x.shape == (4000,) and y == 0
    with pytest.raises(DataError, match="test fold 9 is not among the folds"):
        esc50_files(sounds, "val", 9)


def test_generic_csv_layout(sounds, tmp_path):
    shutil.copytree(sounds / "audio", tmp_path / "clips")
    files = sorted((tmp_path / "clips").glob("*.wav"))
    (tmp_path / "labels.csv").write_text(
        "file,label\n" + "".join(f"clips/{f.name},{f.name.split('-')[-1][:-4]}\n" for f in files)
    )
    train, classes = csv_audio_files(tmp_path, "labels.csv", "train", 5)
    val, _ = csv_audio_files(tmp_path, "labels.csv", "val", 5)
    assert len(train) + len(val) == len(files) and len(val) == len(files) // 5
    (tmp_path / "bad.csv").write_text("path,label\nx.wav,a\n")
    with pytest.raises(DataError, match=r"lacks column\(s\) file"):
        csv_audio_files(tmp_path, "bad.csv", "train", 5)


@pytest.mark.parametrize("row", ["absolute", "../outside.wav", "link.wav"])
def test_csv_rows_naming_files_outside_the_root_are_refused_naming_the_row(tmp_path, row):
    """A labels.csv handed over by someone else reads nothing outside data.root (it did:
    absolute and ../ rows were read, and sharded)."""
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "outside.wav"
    soundfile.write(str(outside), np.zeros(800, dtype="float32"), 8000)
    (root / "link.wav").symlink_to(outside)
    name = str(outside) if row == "absolute" else row
    (root / "labels.csv").write_text(f"file,label,fold\n{name},a,1\n")
    with pytest.raises(DataError, match=r"labels.csv row 2 \(file\).*(absolute path|, outside )"):
        csv_audio_files(root, "labels.csv", "val", 1)


def test_a_fifo_in_place_of_the_csv_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "labels.csv")
    with pytest.raises(DataError, match="not a regular file"):
        csv_audio_files(tmp_path, "labels.csv", "train", 5)


def test_generic_csv_without_fold_or_source_warns_once(tmp_path, caplog):
    (tmp_path / "labels.csv").write_text("file,label\n" + "".join(f"c{i}.wav,{'ab'[i % 2]}\n" for i in range(10)))
    with caplog.at_level(logging.WARNING, logger="multivic"):
        val, classes = csv_audio_files(tmp_path, "labels.csv", "val", 2)
        train, _ = csv_audio_files(tmp_path, "labels.csv", "train", 2)
    assert classes == ["a", "b"]
    assert [p.name for p, _ in val] == ["c1.wav", "c6.wav"]  # rows take folds 1-5 in turn, as before
    assert len(train) == 8
    warnings = [r for r in caplog.records if "may land in different folds" in r.getMessage()]
    assert len(warnings) == 1 and "src_file" in warnings[0].getMessage()


@pytest.mark.parametrize("column", ["src_file", "source"])
def test_generic_csv_keeps_each_source_in_one_fold(tmp_path, caplog, column):
    # 12 recordings of 1-4 clips each, listed so that rows in turn would spread most of them over several folds.
    sizes = [3, 1, 4, 2, 1, 3, 2, 4, 1, 2, 3, 1]
    rows = [(f"r{s}_{k}.wav", f"rec{s}", "ab"[s % 2]) for s, n in enumerate(sizes) for k in range(n)]
    (tmp_path / "labels.csv").write_text(
        f"file,label,{column}\n" + "".join(f"{f},{lab},{src}\n" for f, src, lab in rows)
    )
    source_of = {f: src for f, src, _ in rows}
    fold_of_source: dict[str, int] = {}
    with caplog.at_level(logging.WARNING, logger="multivic"):
        for fold in range(1, 6):
            val, _ = csv_audio_files(tmp_path, "labels.csv", "val", fold)
            train, _ = csv_audio_files(tmp_path, "labels.csv", "train", fold)
            val_sources = {source_of[p.name] for p, _ in val}
            train_sources = {source_of[p.name] for p, _ in train}
            assert val and not val_sources & train_sources  # every fold is used, and no recording is on both sides
            assert len(val) + len(train) == len(rows)
            for src in val_sources:
                assert src not in fold_of_source  # a source's clips all sit in one fold
                fold_of_source[src] = fold
    assert set(fold_of_source) == {f"rec{s}" for s in range(len(sizes))}
    assert "may land in different folds" not in caplog.text
    # Deterministic: the same CSV gives the same folds.
    assert csv_audio_files(tmp_path, "labels.csv", "val", 3) == csv_audio_files(tmp_path, "labels.csv", "val", 3)


def test_unreadable_empty_and_short_files(tmp_path, caplog):
    (tmp_path / "garbage.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(DataError, match=r"cannot read audio file .*garbage.wav"):
        LabelledAudio([(tmp_path / "garbage.wav", 0)], ["a"], 8000)
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(DataError, match=r"empty.wav is empty"):
        LabelledAudio([(tmp_path / "empty.wav", 0)], ["a"], 8000)
    soundfile.write(tmp_path / "short.wav", np.zeros(10, dtype=np.float32), 8000)
    soundfile.write(tmp_path / "ok.wav", np.zeros(800, dtype=np.float32), 8000)
    with caplog.at_level(logging.WARNING, logger="multivic"):
        ds = LabelledAudio([(tmp_path / "short.wav", 0), (tmp_path / "ok.wav", 0)], ["a"], 8000, min_seconds=0.05)
    assert len(ds) == 1 and "skipped 1 clips shorter than 0.050 s" in caplog.text
    with pytest.raises(DataError, match="listed in the meta CSV does not exist"):
        LabelledAudio([(tmp_path / "nope.wav", 0)], ["a"], 8000)


def test_config_errors_for_audio(tmp_path):
    with pytest.raises(ConfigError, match="data.sample_rate must be > 0"):
        load_config("recipes/quickstart/wave_spec.yaml", ["data.sample_rate=0"])
    from multivic.build import build_data, build_model

    cfg = load_config("recipes/quickstart/wave_spec.yaml", ["data.crop_seconds=0.01"])
    with pytest.raises(
        ConfigError, match=r"gives 80 samples, fewer than the 512 that model.branch_b \('spectrogram'\) needs"
    ):
        build_model(cfg, build_data(cfg))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mel_frontend_is_finite_under_autocast(dtype):
    enc = create_encoder("mel_resnet18", sample_rate=8000, n_fft=256, hop_length=64, n_mels=32, spec_augment=True)
    wave = torch.randn(2, 4000) * 1e-4  # quiet input: log of small powers is where half precision fails
    with torch.autocast("cpu", dtype=dtype):
        y = enc(wave)
    assert torch.isfinite(y).all() and y.shape == (2, 512)
    assert torch.isfinite(enc.frontend(wave)).all() and enc.frontend(wave).dtype == torch.float32
