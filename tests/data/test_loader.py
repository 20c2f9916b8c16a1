"""Per-sample augmentation seeds: a pure function of (seed, epoch, index), whoever loads the sample."""

import random

import numpy as np
import torch
from torch.utils.data import DataLoader

from multivic.data.loader import EpochBatches, SeededSamples, seeded_rng
from tests.helpers.toy import PairsOfVectors


def _epoch(sampler, epoch):
    sampler.set_epoch(epoch)
    return list(sampler)


def test_an_epoch_is_a_permutation_cut_into_whole_optimiser_steps():
    sampler = EpochBatches(100, batch_size=8, batches_per_step=3, seed=0)  # 12 batches → 4 steps of 3
    batches = _epoch(sampler, 0)
    assert len(batches) == len(sampler) == 12 and all(len(b) == 8 for b in batches)
    indices = [i for b in batches for i, _ in b]
    assert len(set(indices)) == 96 and set(indices) <= set(range(100))
    assert _epoch(sampler, 0) == batches  # the same epoch again: the same order and seeds


def test_a_sample_gets_a_new_seed_each_epoch_and_distinct_samples_distinct_seeds():
    sampler = EpochBatches(64, batch_size=8, batches_per_step=1, seed=0)
    seeds = [dict(k for b in _epoch(sampler, e) for k in b) for e in (0, 1)]
    assert all(seeds[0][i] != seeds[1][i] for i in range(64))
    assert len(set(seeds[0].values())) == 64
    other = EpochBatches(64, batch_size=8, batches_per_step=1, seed=1)
    assert dict(k for b in _epoch(other, 0) for k in b) != seeds[0]


def test_views_depend_on_the_key_only_not_on_workers_or_history():
    data = SeededSamples(PairsOfVectors(16, constant=True))
    keys = [(i, 1000 + i) for i in range(16)]
    direct = [data[k][0] for k in keys]
    torch.manual_seed(123)  # whatever state the caller's RNG is in
    again = [data[k][0] for k in reversed(keys)][::-1]
    workers = [item for item, _ in DataLoader(data, batch_size=None, sampler=keys, num_workers=2)]
    assert all(data[k][1] is None for k in keys)  # no faults
    for (a, b), (a2, b2), (a3, b3) in zip(direct, again, workers):
        assert torch.equal(a, a2) and torch.equal(b, b2) and torch.equal(a, a3) and torch.equal(b, b3)
    assert not torch.equal(direct[0][0], direct[1][0])  # same vector, different seeds: different views
    assert not torch.equal(data[(0, 1)][0][0], data[(0, 2)][0][0])  # one sample, another epoch's seed


def test_seeded_rng_restores_the_global_generators():
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    expected = torch.rand(3), random.random(), np.random.rand()
    torch.manual_seed(7), random.seed(7), np.random.seed(7)
    with seeded_rng(99):
        inside = torch.rand(1), random.random(), np.random.rand()
    with seeded_rng(99):
        assert (torch.rand(1), random.random(), np.random.rand()) == inside
    after = torch.rand(3), random.random(), np.random.rand()
    assert torch.equal(after[0], expected[0]) and after[1:] == expected[1:]
