"""Sharded streaming data: `multivic shard` round trips, the stream's split over processes and
workers, damaged shards as data faults, and resuming at the right shard."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from multivic.commands.shard import parse_shard_size, write_shards
from multivic.data.builtin import write_shapes_dataset, write_sounds_dataset
from multivic.data.builtin.captions import write_captions_dataset
from multivic.data.formats.webdataset import WebDatasetFormat
from multivic.data.loader import build_stream_loader
from multivic.data.streaming import StreamPlan, buffer_order, make_bins
from multivic.errors import DataError
from multivic.modalities import create_modality
from multivic.registry import FORMATS
from tests.helpers.resume import assert_bitwise_equal, keep_only, without_rate
from tests.helpers.shards import VectorShards, sample_id, truncate, write_id_shards, write_index
from tests.helpers.toy import history, train, vicreg_model

ROOT = Path(__file__).resolve().parents[3]


def _modalities(names, **options):
    return {m: create_modality(m, options) for m in names}


# -- multivic shard: each built-in set round-trips --------------------------------------------


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("sets")
    return {
        "image_folder": write_shapes_dataset(base / "shapes", train_per_class=4, val_per_class=2, size=16),
        "coco": write_captions_dataset(base / "captions", train_images=24, val_images=8, size=24),
        "esc50": write_sounds_dataset(base / "sounds", clips_per_class=5, seconds=0.25),
    }


@pytest.mark.parametrize("source", ["image_folder", "esc50", "coco"])
def test_shards_of_each_builtin_set_hold_the_same_samples_labels_and_captions(small_sets, tmp_path, source):
    out = tmp_path / "shards"
    index = write_shards(str(small_sets[source]), out, shard_size="7")  # the format is detected
    assert index["source"]["format"] == source
    assert all(s["samples"] <= 7 for split in index["splits"].values() for s in split)
    cls = FORMATS.get(source).factory
    src = cls(small_sets[source])
    mods = _modalities(cls.modalities, sample_rate=8000) if source == "esc50" else _modalities(cls.modalities)
    shards = WebDatasetFormat(out)
    assert shards.protocol == src.protocol
    if source == "coco":
        train_src, train_dst = src.split("train", mods), shards.split("train", mods)
        assert len(train_dst) == len(train_src) == 24
        for i in range(len(train_src)):
            assert train_dst.stored(i)["text"] == list(train_src.coco.captions[i])
            assert np.array_equal(
                np.asarray(shards.split("train", mods)[i]["image"]),
                np.asarray(mods["image"].read_file(train_src.coco.image_paths[i])),
            )
        want, got = src.retrieval_set(mods), shards.retrieval_set(mods)
        assert got.second == want.second and got.second_to_first == want.second_to_first
        for a, b in zip(got.first[1], want.first[1]):
            assert np.array_equal(np.asarray(a), np.asarray(b))
        return
    for split in ("train", "val"):
        a, b = src.split(split, mods), shards.split(split, mods)
        assert len(a) == len(b) and a.classes == b.classes and list(a.targets) == list(b.targets)
        key = "image" if source == "image_folder" else "waveform"
        for i in range(len(a)):
            x, y = a[i], b[i]
            assert x["label"] == y["label"]
            assert np.array_equal(np.asarray(x[key]), np.asarray(y[key])), (split, i)


def test_shard_refuses_to_overwrite_and_leaves_nothing_behind_on_failure(small_sets, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="never overwrites"):
        write_shards(str(small_sets["image_folder"]), out)
    with pytest.raises(DataError, match="not readable as any registered data format"):
        write_shards(str(tmp_path / "out"), tmp_path / "new")
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new*"))
    assert parse_shard_size("1000") == (1000, None) and parse_shard_size("256MB") == (None, 256 << 20)


# -- the plan: each sample once per epoch, over processes and workers ---------------------------


def test_the_plan_covers_every_sample_once_and_each_process_makes_the_same_number_of_steps():
    sizes = [8] * 8
    plan = StreamPlan(sizes, world=2, workers=2, batch_size=4, batches_per_step=2, seed=0, shuffle_buffer=5)
    assert plan.steps_per_epoch == 8
    for epoch in range(3):
        seen = []
        for rank in range(2):
            for w in range(2):
                slot = plan.slot(epoch, rank, w)
                offsets = np.cumsum([0] + sizes)
                ids = np.concatenate([np.arange(offsets[i], offsets[i] + sizes[i]) for i in slot.shard_ids])
                seen.extend(ids[slot.order[: slot.batches * 4]].tolist())
        assert sorted(seen) == list(range(64)), epoch
    assert sorted(buffer_order(50, 7, __import__("random").Random(0))) == list(range(50))
    assert sorted(i for b in make_bins([5, 9, 1, 7, 3], 2) for i in b) == [0, 1, 2, 3, 4]


def test_an_infinite_stream_draws_shards_with_replacement_for_epochs_of_epoch_samples(tmp_path):
    write_id_shards(tmp_path, [5, 7, 3])
    split = WebDatasetFormat(tmp_path, shuffle_buffer=4, epoch_samples=40).split("train", {})
    loader, epochs = build_stream_loader(split, sample_id, 4, 1, 0, 2, False, 0, 1, torch.device("cpu"))
    assert epochs.steps_per_epoch == 10
    for epoch in range(2):
        loader.set_epoch(epoch)
        ids = [i for batch, _ in loader for i in batch.tolist()]
        assert len(ids) == 40 and set(ids) <= set(range(15)) and len(set(ids)) < 40  # with replacement


def test_two_processes_with_two_workers_each_see_every_sample_exactly_once_per_epoch(tmp_path):
    write_id_shards(tmp_path / "shards", [8] * 8)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(ROOT / "tests/helpers/shards.py"),
        str(tmp_path),
        str(tmp_path / "shards"),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["steps"] == ranks[1]["steps"] == 8
    for epoch in ("0", "1"):
        batches = [r["seen"][epoch] for r in ranks]
        assert len(batches[0]) == len(batches[1]) == 8 and all(len(b) == 4 for r in batches for b in r)
        seen = sorted(i for r in batches for b in r for i in b)
        assert seen == list(range(64)), epoch
    # fit on the shards with DDP (global batch 16): every process made the same steps (4 per epoch)
    # and holds the same weights.
    assert ranks[0]["fit_steps"] == ranks[1]["fit_steps"] == 8 and ranks[0]["weight"] == ranks[1]["weight"]
    # The processes read other shards in the next epoch.
    assert set(i for b in ranks[0]["seen"]["0"] for i in b) != set(i for b in ranks[0]["seen"]["1"] for i in b)


# -- damaged shards ---------------------------------------------------------------------------


def test_a_corrupt_member_and_a_truncated_shard_are_faults_of_full_batches_not_worker_tracebacks(tmp_path):
    shards = write_id_shards(tmp_path, [8] * 4, bad={3})
    write_index(tmp_path, shards)
    truncate(shards[2].url)
    split = WebDatasetFormat(tmp_path, shuffle_buffer=4).split("train", {})
    loader, epochs = build_stream_loader(split, sample_id, 4, 1, 0, 2, False, 0, 1, torch.device("cpu"))
    loader.set_epoch(0)
    got = list(loader)
    assert len(got) == epochs.steps_per_epoch == 8
    assert all(batch is not None and len(batch) == 4 for batch, _ in got)
    faults = [f for _, fs in got for f in fs]
    reasons = " | ".join(f.reason for f in faults)
    assert any(f.index == 3 for f in faults) and "not an integer" in reasons
    assert "train-000002.tar delivered" in reasons  # the truncated shard's missing samples
    assert 3 not in [i for batch, _ in got for i in batch.tolist()]


# -- the trainer on a stream: faults counted, resumed at the right batch ------------------------


def test_a_stream_trains_counts_bad_samples_and_resumes_mid_epoch_bitwise(tmp_path):
    shards = write_id_shards(tmp_path / "shards", [8] * 8, bad={5})
    data = VectorShards(shards)  # 64 samples, 2 workers, batch 8: 8 steps per epoch, every sample used
    kw = dict(
        epochs=3, batch_size=8, num_workers=2, checkpoint_every_steps=3, keep_checkpoints=10, max_bad_fraction=0.2
    )
    whole = train(vicreg_model(dropout=0.2), data, tmp_path / "whole", **kw)
    assert whole.step == 24 and whole.bad_samples == 3  # the corrupt member, once per epoch
    assert int(history(tmp_path / "whole")[-1]["bad_samples"]) == 3
    parts = tmp_path / "parts"
    shutil.copytree(tmp_path / "whole", parts)
    keep_only(parts, "step_000000012")  # epoch 1 after 4 of its 8 steps
    resumed = train(vicreg_model(dropout=0.2), data, parts, **kw)
    assert resumed.resumed_from == "step_000000012" and resumed.step == whole.step
    assert_bitwise_equal(resumed.model.state_dict(), whole.model.state_dict(), "model")
    assert without_rate(history(parts)) == without_rate(history(tmp_path / "whole"))


def test_resuming_skips_the_shards_already_read_and_continues_with_the_same_batches(tmp_path, monkeypatch):
    write_id_shards(tmp_path, [8] * 6)
    split = WebDatasetFormat(tmp_path, shuffle_buffer=1).split("train", {})
    opened = []
    read = type(split).read_shard
    monkeypatch.setattr(
        type(split), "read_shard", lambda self, shard, errors: (opened.append(shard.url), read(self, shard, errors))[1]
    )
    loader, epochs = build_stream_loader(split, sample_id, 4, 1, 0, 0, False, 0, 1, torch.device("cpu"))
    loader.set_epoch(1)
    whole = [b.tolist() for b, _ in loader]
    order = list(opened)
    opened.clear()
    epochs.resume_at(1, 5)  # 5 batches of 4 done: the first 2 shards (16 samples) are behind
    loader.set_epoch(1)
    rest = [b.tolist() for b, _ in loader]
    assert rest == whole[5:]
    assert opened == order[2:]


def test_the_shard_command(small_sets, tmp_path, capsys):
    from multivic.cli import main

    out = tmp_path / "esc"
    assert main(["shard", str(small_sets["esc50"]), str(out), "--shard-size", "10", "test_fold=4"]) == 0
    index = json.loads((out / "shards.json").read_text())
    assert index["source"]["format"] == "esc50" and index["source"]["options"]["test_fold"] == 4
    assert "train shards" in capsys.readouterr().out
    assert main(["shard", str(small_sets["esc50"]), str(out)]) == 2  # never overwrites
    assert "never overwrites" in capsys.readouterr().err
