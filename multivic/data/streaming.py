"""Streaming (sharded) training data: which samples each process and worker reads, in which
order, in each epoch; a pure function of (seed, epoch, shard sizes, processes, workers).

A streaming split is a list of shards with known sample counts (:class:`StreamingSplit`). The
training loader (:mod:`multivic.data.loader`) never indexes it at random: each of the
``world × workers`` *slots* (one DataLoader worker of one process) reads its own shards in
sequence through a shuffle buffer and cuts its stream into batches. The plan of one epoch:

- **Bins.** The shards are partitioned once into ``world × workers`` bins of nearly equal
  sample counts (largest shard first into the lightest bin). Every shard is in exactly one bin,
  so every sample is read at most once per epoch over all processes and workers.
- **Rotation.** In epoch ``e`` process ``r`` reads the bins of process ``(r + e) mod world``
  (its worker ``w`` the w-th of them), so the processes see different data each epoch while the
  per-process load, hence the number of steps, stays the same.
- **Order.** A bin's shards are read in an order drawn from (seed, epoch, bin); the samples pass
  through a shuffle buffer of ``shuffle_buffer`` samples whose draws come from (seed, epoch,
  bin). The buffer's draws depend only on how many samples it holds, never on their contents,
  so the whole emission order is computed up front on integers (:func:`buffer_order`), and a
  resumed epoch knows which samples come next without reading what came before.
- **Batches.** A process runs ``T`` batches per epoch, the same on every process and a multiple
  of grad_accum_steps: its worker ``w`` produces batches ``w, w + W, w + 2W, ...``
  (the DataLoader's in-order round robin), each of ``batch_size`` consecutive samples of that
  worker's stream. ``T`` is the largest count every process can fill; the samples left over
  (less than a batch per worker, plus the bins' imbalance) are left out of that epoch, different
  ones each epoch.
- **Infinite streams** (``epoch_samples``): each slot draws shards with replacement, from
  (seed, epoch, slot), until it has enough for its batches of an epoch of ``epoch_samples``
  samples over all processes.

Every sample's augmentations run under a seed drawn from (seed, epoch, its index in the
split), as in the map-style loader, so they do not depend on the process or worker reading it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

_MASK = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a cheap bijective scramble of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def stream_key(*parts: int) -> int:
    """A 63-bit integer mixed from ``parts`` (seed, epoch, ...), unrelated for nearby inputs."""
    return int(np.random.SeedSequence([int(p) & _MASK for p in parts]).generate_state(1, np.uint64)[0]) >> 1


def sample_seed(epoch_key: int, index: int) -> int:
    """The augmentation seed of sample ``index`` (its position in the split) in an epoch."""
    return _mix64(epoch_key ^ _mix64(index)) >> 1


@dataclass(frozen=True)
class Shard:
    """One shard: where it is (a path or any URL webdataset opens) and how many samples it holds."""

    url: str
    samples: int


class StreamingSplit:
    """A split read as a stream of shards (the training loader plans it, see the module docstring).

    Subclasses give ``shards`` (in the split's canonical order: sample ``i`` of the split is the
    ``i - offset``-th sample of the shard holding it) and :meth:`read_shard`, which yields a
    shard's raw samples in order and stops early (after reporting why) when the shard is
    damaged; and :meth:`decode`, which turns a raw sample into a sample dict ``{modality: item,
    "label": y}`` or raises."""

    shards: Sequence[Shard]
    # Samples each worker's shuffle buffer holds, and for an infinite stream the samples of an
    # epoch (None: one pass over the shards): the values of the format's options, set by each
    # split (declared here, defaulted in one place: the format's option fields).
    shuffle_buffer: int
    epoch_samples: int | None

    def read_shard(self, shard: Shard, errors: list[str]) -> Iterator[Any]:
        raise NotImplementedError

    def decode(self, raw: Any) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self, raw: Any) -> str:
        """Where a raw sample came from (shard and key), for fault messages."""
        return "?"

    @property
    def num_samples(self) -> int:
        return sum(s.samples for s in self.shards)


def buffer_order(n: int, buffer: int, rng: random.Random) -> list[int]:
    """The order in which a shuffle buffer of ``buffer`` samples emits positions 0..n-1 of a
    stream: fill up to ``buffer``, then emit a random held sample per sample read, then drain.
    The draws depend only on how many samples are held, so the order is computed on integers."""
    if buffer <= 1:
        return list(range(n))
    held: list[int] = []
    out: list[int] = []
    randrange = rng.randrange
    for p in range(n):
        held.append(p)
        if len(held) >= buffer:
            k = randrange(len(held))
            held[k], held[-1] = held[-1], held[k]
            out.append(held.pop())
    while held:
        k = randrange(len(held))
        held[k], held[-1] = held[-1], held[k]
        out.append(held.pop())
    return out


def make_bins(sizes: Sequence[int], count: int) -> list[list[int]]:
    """Shard indices partitioned into ``count`` bins of nearly equal total size (largest first
    into the lightest bin; ties by index). Deterministic."""
    bins: list[list[int]] = [[] for _ in range(count)]
    loads = [0] * count
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        b = min(range(count), key=lambda b: (loads[b], b))
        bins[b].append(i)
        loads[b] += sizes[i]
    return [sorted(b) for b in bins]


def worker_batches(total: int, workers: int, worker: int) -> int:
    """How many of a process's ``total`` batches its worker ``worker`` makes (round robin)."""
    return len(range(worker, total, workers))


@dataclass
class SlotPlan:
    """What one worker of one process reads in one epoch."""

    shard_ids: list[int]  # into split.shards, in reading order
    order: list[int]  # emission order: positions in the concatenation of those shards
    batches: int  # batches this worker makes in the whole epoch


class StreamPlan:
    """The epochs of a streaming split for ``world`` processes of ``workers`` workers each.

    ``batch_size`` is per process; ``batches_per_step`` = world × grad_accum_steps (as for
    :class:`multivic.data.loader.EpochBatches`)."""

    def __init__(
        self,
        sizes: Sequence[int],
        world: int,
        workers: int,
        batch_size: int,
        batches_per_step: int,
        seed: int,
        shuffle_buffer: int,
        epoch_samples: int | None = None,
    ) -> None:
        self.sizes, self.world, self.workers = list(sizes), world, max(1, workers)
        self.batch_size, self.seed, self.shuffle_buffer = batch_size, seed, shuffle_buffer
        self.epoch_samples = epoch_samples
        self.accum = max(1, batches_per_step // world)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64).tolist()
        slots = world * self.workers
        if not any(self.sizes):
            raise ValueError("the shards hold no samples")
        if epoch_samples is None:
            self.bins = make_bins(self.sizes, slots)
            per_slot = [sum(self.sizes[i] for i in b) // batch_size for b in self.bins]
            self.batches_per_process = min(
                self._capacity(per_slot[r * self.workers : (r + 1) * self.workers]) for r in range(world)
            )
        else:
            self.bins = []
            self.batches_per_process = epoch_samples // (batch_size * world)
        self.batches_per_process -= self.batches_per_process % self.accum

    def _capacity(self, full_batches: Sequence[int]) -> int:
        """The most batches a process can make when its worker w can fill ``full_batches[w]``:
        worker w makes ceil((T - w) / W) of T batches, so T <= full_batches[w]·W + w for every w."""
        return min(f * self.workers + w for w, f in enumerate(full_batches))

    @property
    def steps_per_epoch(self) -> int:
        return self.batches_per_process // self.accum

    def epoch_key(self, epoch: int) -> int:
        return stream_key(self.seed, epoch, 0x5EED)

    def slot(self, epoch: int, rank: int, worker: int) -> SlotPlan:
        """The plan of worker ``worker`` of process ``rank`` in ``epoch``."""
        batches = worker_batches(self.batches_per_process, self.workers, worker)
        if self.epoch_samples is None:
            owner = (rank + epoch) % self.world
            bin_id = owner * self.workers + worker
            rng = random.Random(stream_key(self.seed, epoch, bin_id, 1))
            shard_ids = list(self.bins[bin_id])
            rng.shuffle(shard_ids)
        else:  # shards with replacement until the batches are covered
            rng = random.Random(stream_key(self.seed, epoch, rank, worker, 2))
            need, shard_ids, have = batches * self.batch_size, [], 0
            while have < need and self.sizes:
                i = rng.randrange(len(self.sizes))
                shard_ids.append(i)
                have += self.sizes[i]
        n = sum(self.sizes[i] for i in shard_ids)
        order = buffer_order(n, self.shuffle_buffer, rng)
        return SlotPlan(shard_ids, order, batches)


__all__ = [
    "Shard",
    "SlotPlan",
    "StreamPlan",
    "StreamingSplit",
    "buffer_order",
    "make_bins",
    "sample_seed",
    "stream_key",
]
