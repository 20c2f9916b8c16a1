"""examples/sensor_series: a modality, a data format and two encoders added from outside the
package train through `multivic train`, export their input pipeline, and embed CSV files."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from multivic import registry
from multivic.cli import main

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sensor_series"
FAST = [
    "train.epochs=1",
    "train.batch_size=32",
    "train.log_every=1",
    "eval.linear_epochs=2",
    "model.branch_a.encoder_kwargs.width=8",
    "model.branch_b.encoder_kwargs.width=8",
]


@pytest.fixture
def clean_registries():
    """Forget what sensors.py registers, before and after, so each test imports it afresh."""

    def forget():
        registry.MODALITIES._entries.pop("sensor", None)
        registry.FORMATS._entries.pop("sensor_csv", None)
        for name in ("sensor_cnn1d", "sensor_spectrogram"):
            registry.ENCODERS._entries.pop(name, None)
        sys.modules.pop("multivic_user_sensors", None)

    forget()
    yield
    forget()


@pytest.fixture
def small_sensor_root(tmp_path):
    """The toy data set written small: 4 classes, 16 train and 4 val recordings each."""
    registry.import_modules([str(EXAMPLE / "sensors.py")])
    write = sys.modules["multivic_user_sensors"].write_toy_sensors
    return write(tmp_path / "data", train_per_class=16, val_per_class=4)


def test_sensor_example_trains_exports_and_embeds(clean_registries, small_sensor_root, tmp_path, capsys):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            str(EXAMPLE / "recipe.yaml"),
            "--output-dir",
            str(run),
            "--no-progress",
            f"data.root={small_sensor_root}",
            *FAST,
        ]
    )
    assert code == 0

    metrics = json.loads((run / "metrics.json").read_text())
    for branch in ("raw", "spectrogram"):
        assert 0.0 <= metrics[f"{branch}/linear_top1"] <= 100.0
        meta = json.loads((run / "export" / f"{branch}.json").read_text())
        assert meta["modality"] == "sensor"
        assert meta["preprocess"] == {"modality": "sensor", "options": {"window": 128, "channels": 3}}
        assert meta["encoder_kwargs"]["in_channels"] == 3  # given by the modality
        assert meta["imports"] == [str(EXAMPLE / "sensors.py")]

    # A folder of a few recordings, one shorter than the window (zero-padded), one headerless.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for src in sorted((small_sensor_root / "val" / "sine").glob("*.csv"))[:2]:
        shutil.copy(src, inputs / src.name)
    np.savetxt(inputs / "short.csv", np.random.default_rng(0).normal(size=(50, 3)), delimiter=",", fmt="%.4f")

    # The export alone is enough, in a fresh registry state: it records sensors.py among its
    # imports, which it imports when the user trusts it.
    registry.MODALITIES._entries.pop("sensor", None)
    registry.ENCODERS._entries.pop("sensor_spectrogram", None)
    sys.modules.pop("multivic_user_sensors", None)
    out = tmp_path / "e.npy"
    embed = ["embed", str(run / "export"), "--branch", "spectrogram", "--input", str(inputs), "--out", str(out)]
    capsys.readouterr()
    assert main(embed) == 2
    assert "sensors.py'] to build encoder 'sensor_spectrogram'" in capsys.readouterr().err
    assert "multivic_user_sensors" not in sys.modules
    assert main([*embed, "--trust-imports"]) == 0
    embeddings = np.load(out)
    assert embeddings.shape == (3, 32)  # 3 files, width 8 × 4
    assert np.isfinite(embeddings).all()


def test_sensor_example_reports_bad_options_and_data(clean_registries, small_sensor_root, tmp_path, capsys):
    recipe = str(EXAMPLE / "recipe.yaml")
    out = str(tmp_path / "run")
    assert main(["train", recipe, "--output-dir", out, f"data.root={small_sensor_root}", "data.window=2"]) != 0
    assert "data.window must be >= 8" in capsys.readouterr().err
    assert (
        main(
            ["train", recipe, "--output-dir", out, f"data.root={small_sensor_root}", "model.branch_b.view.noise_std=-1"]
        )
        != 0
    )
    assert "noise_std must be >= 0" in capsys.readouterr().err

    shutil.rmtree(small_sensor_root / "val" / "ramp")
    (small_sensor_root / "val" / "ramp").mkdir()
    assert main(["train", recipe, "--output-dir", out, "--no-progress", f"data.root={small_sensor_root}", *FAST]) != 0
    assert "holds no .csv files" in capsys.readouterr().err


def test_sensor_example_shards_keep_every_sample_and_train(clean_registries, small_sensor_root, tmp_path, capsys):
    """The plug-in modality's samples survive `multivic shard` (its tensors were dropped before)
    and a run trains and evaluates from the shards."""
    shards = tmp_path / "shards"
    assert (
        main(
            [
                "shard",
                str(small_sensor_root),
                str(shards),
                "--import",
                str(EXAMPLE / "sensors.py"),
                "--shard-size",
                "10",
            ]
        )
        == 0
    )
    from multivic.data.formats.webdataset import WebDatasetFormat
    from multivic.modalities import create_modality

    modality = create_modality("sensor")
    folder_format = registry.FORMATS.create("sensor_csv", root=small_sensor_root)
    index = json.loads((shards / "shards.json").read_text())
    assert index["modalities"] == ["sensor"] and index["protocol"] == "classification"
    for split in ("train", "val"):
        folder = folder_format.split(split, {"sensor": modality})
        sharded = WebDatasetFormat(shards).split(split, {"sensor": modality})
        assert len(sharded) == len(folder) > 0
        for i in range(len(folder)):  # the same recordings, bit for bit, with their labels, in order
            want, got = folder[i], sharded[i]
            assert got["label"] == want["label"]
            assert got["sensor"].dtype == want["sensor"].dtype and np.array_equal(got["sensor"], want["sensor"])

    run = tmp_path / "run"
    code = main(
        [
            "train",
            str(EXAMPLE / "recipe.yaml"),
            "--output-dir",
            str(run),
            "--no-progress",
            "data.format=webdataset",
            f"data.root={shards}",
            "data.builtin=null",
            *FAST,
        ]
    )
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"raw/linear_top1", "spectrogram/linear_top1"} <= set(metrics)
