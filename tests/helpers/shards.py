"""Tiny tar shards for the webdataset tests, and a streaming split of vectors for the trainer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from webdataset import TarWriter

from multivic.data.formats.webdataset import ShardSplit, label_of
from multivic.data.streaming import Shard
from multivic.errors import DataError

DIM = 6


def write_id_shards(folder: Path, sizes: list[int], bad: set[int] = frozenset(), prefix: str = "train") -> list[Shard]:
    """Shards whose sample i (counted over all shards) has ``cls`` = i and a caption; the ids in
    ``bad`` get a ``cls`` that is not a number (a corrupt member)."""
    folder.mkdir(parents=True, exist_ok=True)
    shards, i = [], 0
    for k, n in enumerate(sizes):
        path = folder / f"{prefix}-{k:06d}.tar"
        with TarWriter(str(path), encoder=False, mtime=0.0) as w:
            for _ in range(n):
                w.write(
                    {
                        "__key__": f"{i:09d}",
                        "cls": b"x" if i in bad else str(i).encode(),
                        "json": json.dumps({"captions": [f"sample {i}"]}).encode(),
                    }
                )
                i += 1
        shards.append(Shard(str(path), n))
    return shards


def write_index(folder: Path, shards: list[Shard], split: str = "train") -> None:
    """shards.json as multivic shard writes it (the sizes before any damage)."""
    index = {
        "multivic_shards": 1,
        "protocol": "classification",
        "classes": None,
        "splits": {split: [{"url": Path(s.url).name, "samples": s.samples} for s in shards]},
    }
    (folder / "shards.json").write_text(json.dumps(index))


def truncate(path: str, keep_fraction: float = 0.5) -> None:
    """Cut a tar file in the middle of its members (a shard whose copy was interrupted)."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep_fraction) // 512 * 512 + 100)


def sample_id(sample: dict) -> int:
    return int(sample["label"])


class VectorShards(ShardSplit):
    """A streaming split over id shards whose items are two noisy views of a fixed vector per
    id (the noise from torch's global RNG, which the loader seeds per sample)."""

    def __init__(self, shards: list[Shard], shuffle_buffer: int = 16) -> None:
        super().__init__(shards, {}, None, shuffle_buffer, None)
        self.x = torch.randn(self.num_samples, DIM, generator=torch.Generator().manual_seed(0))

    def decode(self, raw, every_item: bool = False):
        i = label_of(raw)  # a corrupt cls raises DataError
        if i >= len(self.x):
            raise DataError(f"sample id {i} out of range")
        x = self.x[i]
        return x + 0.05 * torch.randn_like(x), x + 0.05 * torch.randn_like(x)


if __name__ == "__main__":  # a torchrun worker: python -m torch.distributed.run ... shard_helpers.py OUT SHARDS
    import torch.distributed as dist
    from accelerate import PartialState

    from multivic.data.formats.webdataset import WebDatasetFormat
    from multivic.data.loader import build_stream_loader

    out, root = Path(sys.argv[1]), Path(sys.argv[2])
    state = PartialState(cpu=True)  # the gloo process group, initialised once for both parts below
    rank, world = state.process_index, state.num_processes
    split = WebDatasetFormat(root, shuffle_buffer=5).split("train", {})
    loader, epochs = build_stream_loader(split, sample_id, 4, world, 0, 2, False, rank, world, torch.device("cpu"))
    seen = {}
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen[epoch] = [batch.tolist() for batch, faults in loader]
    dist.barrier()
    # The trainer on the same shards: DDP over the two processes, the stream unprepared by Accelerate.
    from tests.helpers.toy import train, vicreg_model

    result = train(
        vicreg_model(),
        VectorShards([Shard(s.url, s.samples) for s in split.shards]),
        out / "fit",
        epochs=2,
        batch_size=16,
        num_workers=2,
    )
    weight = result.model.branch_a.encoder.lin.weight.detach()
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "steps": epochs.steps_per_epoch,
                "seen": seen,
                "fit_steps": result.step,
                "weight": weight.flatten().tolist(),
            }
        )
    )
