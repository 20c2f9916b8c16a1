"""The training loader: an epoch's sample order, and augmentations that are a pure function of
(seed, epoch, sample); unreadable samples replaced and reported instead of crashing a worker.

Why not the DataLoader's own seeding: each worker starts from a seed drawn once from the main
process's RNG. Every process draws the same one (they share the seed), so the i-th sample of
every rank's shard got the same crops and flips; and persistent workers carry their RNG from
epoch to epoch, so a run resumed at epoch e re-seeds them differently from the uninterrupted
run. Here the batch sampler, which runs in the main process, hands every sample a seed drawn
from (seed, epoch) for its dataset index, and the dataset runs the sample's transforms under
that seed. Where and when a sample is loaded (rank, worker, resumed or not) no longer matters,
and two ranks see different samples, hence different seeds. The loader draws its workers' base
seed from a generator of its own, so starting an iterator never moves the global RNG that
dropout uses: a run resumed in the middle of an epoch continues the uninterrupted run's stream.

Data faults: a sample whose reading or view raises is replaced by the next readable sample
(same seed), so batches keep their size on every process; the batch carries a
:class:`SampleFault` per replaced sample, which the trainer counts, warns about or (with
``data.strict``) stops on, in the main process, with the file's path and no worker traceback.
"""

from __future__ import annotations

import contextlib
import random
import signal
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, default_collate, get_worker_info

from multivic.data.formats import PairedViews
from multivic.data.streaming import SlotPlan, StreamingSplit, StreamPlan, sample_seed, worker_batches
from multivic.errors import DataError

SampleKey = tuple[int, int]  # (index into the data set, seed of its augmentations)


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block without moving torch's (CPU), Python's or NumPy's global random state. The
    CUDA generators are left alone: reading them would start a CUDA context on every GPU."""
    saved = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    try:
        yield
    finally:
        torch.set_rng_state(saved[0])
        random.setstate(saved[1])
        np.random.set_state(saved[2])


@contextlib.contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Run a block with torch's, Python's and NumPy's global RNGs seeded from ``seed`` (transforms
    draw from the global RNGs: torchvision, multivic's views, CaptionPairs' caption choice; user
    transforms may use ``random`` or NumPy).

    In the main process the previous states are restored afterwards, so that dropout and the
    like do not depend on the data. A data-loading worker's global RNGs serve only the
    transforms, so there they are left as they are: saving and restoring NumPy's state alone
    costs ten times what seeding the three generators does.
    """
    with contextlib.nullcontext() if get_worker_info() is not None else preserved_rng():
        torch.default_generator.manual_seed(seed)  # the CPU generator only: never initialises CUDA
        random.seed(seed)
        np.random.seed(seed % 2**32)
        yield


class SampleFault(NamedTuple):
    """A sample that could not be read or viewed: its dataset index and why (DataErrors name the file)."""

    index: int
    reason: str


# How far past an unreadable sample to look for a readable one before giving up on the batch.
MAX_REPLACEMENT_TRIES = 64


class SeededSamples(Dataset):
    """``(base[index], fault)`` computed under the RNG seed that comes with the index (see
    :class:`EpochBatches`). When ``base[index]`` raises, the item is the next readable sample
    (index + 1, + 2, ... under the same seed) and ``fault`` says what failed; otherwise ``fault``
    is None. After :data:`MAX_REPLACEMENT_TRIES` unreadable samples in a row the item is None."""

    def __init__(self, base: Dataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey) -> tuple[Any, SampleFault | None]:
        index, seed = key
        fault = None
        for offset in range(MAX_REPLACEMENT_TRIES):
            candidate = (index + offset) % len(self)
            try:
                with seeded_rng(seed):
                    return self.base[candidate], fault
            except Exception as exc:  # noqa: BLE001 - any failure on one sample is a data fault, reported by the trainer
                if fault is None:
                    fault = SampleFault(index, describe_fault(exc, index))
        return None, fault


def describe_fault(exc: BaseException, index: int) -> str:
    """One line: a DataError's own message (it names the file), else the sample index and the error."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, DataError):
        return text
    return f"sample {index}: {type(exc).__name__}: {text}"


class FaultCollate:
    """Collates ``(item, fault)`` pairs into ``(batch, faults)``; the batch is None when a sample
    had no readable replacement (the trainer then stops with the faults' message)."""

    def __init__(self, collate_fn: Callable | None) -> None:
        self.collate_fn = collate_fn or default_collate

    def __call__(self, pairs: list[tuple[Any, SampleFault | None]]) -> tuple[Any, list[SampleFault]]:
        faults = [f for _, f in pairs if f is not None]
        if any(item is None for item, _ in pairs):
            return None, faults
        return self.collate_fn([item for item, _ in pairs]), faults


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader worker init: SIGTERM and SIGUSR1 are for the training process, which stops at a
    step boundary and checkpoints (a scheduler may signal the whole process group)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # SeedSequence mixes (seed, epoch) so that nearby pairs give unrelated streams.
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class EpochBatches(Sampler[list[SampleKey]]):
    """The batches of one epoch over all processes: lists of ``(index, sample_seed)``.

    The order is a permutation drawn from (seed, epoch); every sample's augmentation seed is drawn
    from (seed, epoch) for its index. Batches have the per-process size; Accelerate hands batch
    i to process i mod world. Only whole optimiser steps are kept: the number of batches is a
    multiple of ``world × grad_accum_steps``, so the schedule counts exactly the steps that run
    and no accumulation window is partial (fewer than batch × grad_accum_steps samples are left
    out per epoch, different ones each epoch).

    The epoch is set with :meth:`set_epoch` in the main process before iterating; persistent
    workers need not know it, the seeds travel with the indices. After ``resume_at(e, k)`` epoch
    e starts after its first k optimiser steps (a run resumed in the middle of the epoch): the
    batches that remain are exactly those the uninterrupted epoch drew after step k.
    (Accelerate's loader calls ``set_epoch`` itself on every iteration, so the resume point is
    kept here rather than passed to ``set_epoch``.)
    """

    drop_last = True  # read by Accelerate's BatchSamplerShard: every batch is full

    def __init__(self, num_samples: int, batch_size: int, batches_per_step: int, seed: int) -> None:
        """``batch_size`` per process; ``batches_per_step`` = world × grad_accum_steps."""
        self.num_samples, self.batch_size, self.batches_per_step, self.seed = (
            num_samples,
            batch_size,
            batches_per_step,
            seed,
        )
        self.epoch, self.start_step = 0, 0
        self.resume_point = (0, 0)

    def resume_at(self, epoch: int, steps_done: int) -> None:
        if not 0 <= steps_done <= self.steps_per_epoch:
            raise ValueError(f"steps_done={steps_done} is outside the epoch's {self.steps_per_epoch} steps")
        self.resume_point = (epoch, steps_done)
        self.set_epoch(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.start_step = self.resume_point[1] if epoch == self.resume_point[0] else 0

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps in a whole epoch."""
        return self.num_samples // self.batch_size // self.batches_per_step

    def __len__(self) -> int:
        """Batches still to come in this epoch (all of them unless resumed mid-epoch)."""
        return (self.steps_per_epoch - self.start_step) * self.batches_per_step

    def __iter__(self) -> Iterator[list[SampleKey]]:
        g = _epoch_generator(self.seed, self.epoch)
        order = torch.randperm(self.num_samples, generator=g)
        seeds = torch.randint(0, 2**63 - 1, (self.num_samples,), generator=g)  # by dataset index
        first = self.start_step * self.batches_per_step
        for b in range(first, first + len(self)):
            rows = order[b * self.batch_size : (b + 1) * self.batch_size].tolist()
            yield [(i, int(seeds[i])) for i in rows]


def shutdown_workers(iterator: Any) -> None:
    """Stop a DataLoader iterator's worker processes now (a no-op without workers). Left to the
    garbage collector after an exception, whose traceback keeps the iterator alive, they are
    stopped at some later moment: the interpreter hung at exit, or a queue thread printed a
    traceback during a later evaluation in the same process."""
    shutdown = getattr(iterator, "_shutdown_workers", None)  # private, hence looked up defensively
    if shutdown is not None:
        shutdown()


def stop_workers(loader: DataLoader) -> None:
    """Shut down a loader's persistent workers (see :func:`shutdown_workers`)."""
    loader = getattr(loader, "base_dataloader", loader)  # Accelerate's wrapper holds the real loader
    iterator = getattr(loader, "_iterator", None) or getattr(loader, "_stream_iterator", None)
    if iterator is not None:
        shutdown_workers(iterator)
        loader._iterator = None


def build_loader(
    train_set: Dataset,
    batch_size: int,
    batches_per_step: int,
    seed: int,
    num_workers: int,
    pin_memory: bool,
    collate_fn: Callable | None = None,
) -> tuple[DataLoader, EpochBatches]:
    """The training DataLoader (before ``accelerator.prepare``) and its sampler, whose epoch the
    loop sets. ``batch_size`` is per process. Batches are ``(collate_fn(items), faults)``."""
    sampler = EpochBatches(len(train_set), batch_size, batches_per_step, seed)  # type: ignore[arg-type]
    loader = DataLoader(
        SeededSamples(train_set),
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=FaultCollate(collate_fn),
        worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),  # worker base seeds; keeps the global RNG untouched
    )
    return loader, sampler


# --------------------------------------------------------------------------------------------
# Streaming (sharded) training data: an iterable path beside the map-style one above, which it
# leaves untouched. The plan (who reads which shard, in which order, which batches) is
# multivic.data.streaming's; here a DataLoader runs it.


def streaming_split(train_set: Dataset) -> tuple[StreamingSplit, Callable[[dict], Any]] | None:
    """The streaming split under a training set and the function that makes a training item of
    one of its decoded samples, or None for a map-style training set. A training set is
    streaming when it is a :class:`~multivic.data.streaming.StreamingSplit`, or the
    :class:`~multivic.data.formats.PairedViews` of one."""
    if isinstance(train_set, StreamingSplit):
        return train_set, identity
    if isinstance(train_set, PairedViews) and isinstance(train_set.samples, StreamingSplit):
        return train_set.samples, PairOfViews(train_set.side_a, train_set.side_b)
    return None


def identity(x: Any) -> Any:
    return x


class PairOfViews:
    """``(view_a(sample[modality_a]), view_b(sample[modality_b]))``: PairedViews' item, for one sample."""

    def __init__(self, side_a: tuple[str, Callable], side_b: tuple[str, Callable]) -> None:
        self.side_a, self.side_b = side_a, side_b

    def __call__(self, sample: dict) -> tuple[Any, Any]:
        (mod_a, view_a), (mod_b, view_b) = self.side_a, self.side_b
        return view_a(sample[mod_a]), view_b(sample[mod_b])


class StreamEpochs:
    """The streaming counterpart of :class:`EpochBatches` for the loop: the epoch, the resume
    point and the number of steps; the batches themselves come from :class:`StreamedBatches`."""

    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self.epoch, self.start_step = 0, 0
        self.resume_point = (0, 0)

    resume_at = EpochBatches.resume_at
    set_epoch = EpochBatches.set_epoch

    @property
    def steps_per_epoch(self) -> int:
        return self.plan.steps_per_epoch

    @property
    def samples_per_epoch(self) -> int:
        """Samples of one epoch over all processes."""
        return self.plan.batches_per_process * self.plan.batch_size * self.plan.world

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.plan.accum


class _Missing(NamedTuple):
    """A planned sample its shard did not deliver (a truncated or unreadable shard)."""

    reason: str


class StreamedBatches(IterableDataset):
    """The batches ``(collate(items), faults)`` of one process in the current epoch of
    ``epochs`` (read when the DataLoader starts its workers, which are not persistent).

    Each worker reads the shards of its plan in order, keeps the samples it will emit (a shard
    none of whose samples is still due, after a resume, is not opened), and emits its batches in
    the plan's order. A sample that cannot be decoded or viewed, or that its shard did not
    deliver, is replaced by another readable sample of the same batch viewed under the failed
    sample's seed, and reported as a :class:`SampleFault`; stream positions never move, so the
    plan, and with it resuming, stays exact."""

    def __init__(
        self,
        split: StreamingSplit,
        make_item: Callable[[dict], Any],
        epochs: StreamEpochs,
        rank: int,
        collate_fn: Callable | None,
    ) -> None:
        self.split, self.make_item, self.epochs, self.rank = split, make_item, epochs, rank
        self.collate = FaultCollate(collate_fn)

    def __iter__(self) -> Iterator[tuple[Any, list[SampleFault]]]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        plan, epoch = self.epochs.plan, self.epochs.epoch
        slot = plan.slot(epoch, self.rank, worker)
        done = worker_batches(self.epochs.start_step * plan.accum, plan.workers, worker)
        yield from self._run(slot, done, plan.epoch_key(epoch), plan.batch_size, plan.offsets)

    def _run(
        self, slot: SlotPlan, done: int, epoch_key: int, b: int, offsets: list[int]
    ) -> Iterator[tuple[Any, list[SampleFault]]]:
        sizes = [self.split.shards[i].samples for i in slot.shard_ids]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        # Position in this worker's stream -> index of the sample in the split.
        global_index = (
            np.concatenate(
                [np.arange(offsets[i], offsets[i] + n, dtype=np.int64) for i, n in zip(slot.shard_ids, sizes)]
            )
            if sizes
            else np.zeros(0, np.int64)
        )
        order = np.asarray(slot.order[: slot.batches * b], dtype=np.int64)
        needed = np.zeros(len(global_index) + 1, dtype=np.int64)
        needed[order[done * b :]] = 1
        due = np.concatenate([[0], np.cumsum(needed[:-1])])  # due[p]: positions < p still to emit
        batch_end = [int(order[i * b : (i + 1) * b].max()) + 1 for i in range(slot.batches)]
        held: dict[int, Any] = {}
        next_batch = done

        def ready(read_to: int) -> Iterator[tuple[Any, list[SampleFault]]]:
            nonlocal next_batch
            while next_batch < slot.batches and batch_end[next_batch] <= read_to:
                positions = order[next_batch * b : (next_batch + 1) * b].tolist()
                yield self._batch(
                    [held.pop(p) for p in positions], [int(global_index[p]) for p in positions], epoch_key
                )
                next_batch += 1

        for k, shard_id in enumerate(slot.shard_ids):
            lo, hi = int(starts[k]), int(starts[k + 1])
            if next_batch >= slot.batches:
                break
            if due[hi] - due[lo] == 0:  # nothing of this shard is still to be emitted: not opened
                yield from ready(hi)
                continue
            shard = self.split.shards[shard_id]
            errors: list[str] = []
            count = 0
            for raw in self.split.read_shard(shard, errors):
                if count >= hi - lo:
                    break
                p = lo + count
                if needed[p]:
                    held[p] = raw
                count += 1
                yield from ready(p + 1)
            if count < hi - lo:
                why = errors[0] if errors else "it ended early"
                reason = f"shard {shard.url} delivered {count} of its {hi - lo} samples ({why})"
                for p in range(lo + count, hi):
                    if needed[p]:
                        held[p] = _Missing(reason)
            yield from ready(hi)

    def _batch(self, raws: list[Any], indices: list[int], epoch_key: int) -> tuple[Any, list[SampleFault]]:
        items: list[Any] = [None] * len(raws)
        faults: list[SampleFault | None] = [None] * len(raws)
        readable = []
        for t, (raw, index) in enumerate(zip(raws, indices)):
            if isinstance(raw, _Missing):
                faults[t] = SampleFault(index, raw.reason)
                continue
            try:
                with seeded_rng(sample_seed(epoch_key, index)):
                    items[t] = self.make_item(self.split.decode(raw))
                readable.append(t)
            except Exception as exc:  # noqa: BLE001 - any failure on one sample is a data fault
                faults[t] = SampleFault(index, f"{self.split.describe(raw)}: {describe_fault(exc, index)}")
        for t, fault in enumerate(faults):
            if fault is None:
                continue
            # The next readable sample of the batch, viewed under this sample's seed.
            for u in sorted(readable, key=lambda u: (u - t) % len(raws)):
                try:
                    with seeded_rng(sample_seed(epoch_key, indices[t])):
                        items[t] = self.make_item(self.split.decode(raws[u]))
                    break
                except Exception:  # noqa: BLE001 - a view that fails only under this seed: try another
                    continue
        return self.collate(list(zip(items, faults)))


class StreamLoader(DataLoader):
    """The DataLoader of a streaming split: one iterable of batches per epoch (workers start
    each epoch, so they read the epoch and resume point set just before), moved to ``device``
    (the map-style loader gets that from Accelerate's prepare)."""

    def __init__(self, batches: StreamedBatches, device: torch.device, **kwargs: Any) -> None:
        super().__init__(batches, batch_size=None, **kwargs)
        self.device = device
        self._stream_iterator: Any = None

    def set_epoch(self, epoch: int) -> None:
        self.dataset.epochs.set_epoch(epoch)  # type: ignore[attr-defined]

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        from accelerate.utils import send_to_device

        iterator = super().__iter__()
        self._stream_iterator = iterator
        try:
            for batch, faults in iterator:
                yield (send_to_device(batch, self.device) if batch is not None else None), faults
        finally:
            shutdown_workers(iterator)
            self._stream_iterator = None


def build_stream_loader(
    split: StreamingSplit,
    make_item: Callable[[dict], Any],
    batch_size: int,
    batches_per_step: int,
    seed: int,
    num_workers: int,
    pin_memory: bool,
    rank: int,
    world: int,
    device: torch.device,
    collate_fn: Callable | None = None,
) -> tuple[StreamLoader, StreamEpochs]:
    """The training loader of a streaming split and its epoch state, which the loop sets and
    resumes like :class:`EpochBatches`. ``batch_size`` is per process."""
    plan = StreamPlan(
        [s.samples for s in split.shards],
        world,
        num_workers,
        batch_size,
        batches_per_step,
        seed,
        split.shuffle_buffer,
        split.epoch_samples,
    )
    epochs = StreamEpochs(plan)
    loader = StreamLoader(
        StreamedBatches(split, make_item, epochs, rank, collate_fn),
        device,
        num_workers=num_workers,
        pin_memory=pin_memory,
        worker_init_fn=ignore_stop_signals if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed),
    )
    return loader, epochs
