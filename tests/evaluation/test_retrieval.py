"""Retrieval R@k against a brute-force ranking, ties, several captions per image, a perfect case."""

import math

import pytest
import torch
import torch.nn.functional as F

import multivic
from multivic.evaluation.retrieval import retrieval_ranks, retrieval_recall, retrieval_recall_folds


def _brute_force(images, texts, index):
    """Rank by sorting every candidate list in Python, ties pessimistic, as the docstring defines."""
    sim = F.normalize(images.double(), dim=1) @ F.normalize(texts.double(), dim=1).T
    i2t, t2i = [], []
    for i in range(images.shape[0]):
        row = sim[i].tolist()
        true = [j for j in range(len(row)) if index[j] == i]
        best = max(row[j] for j in true)
        order = sorted(range(len(row)), key=lambda j: (-row[j], j in true))  # ties: false ones first
        i2t.append(min(order.index(j) for j in true if row[j] == best))
    for j in range(texts.shape[0]):
        col = sim[:, j].tolist()
        own = int(index[j])
        order = sorted(range(len(col)), key=lambda i: (-col[i], i == own))
        t2i.append(order.index(own))
    return torch.tensor(i2t), torch.tensor(t2i)


@pytest.mark.parametrize("seed", range(4))
def test_ranks_match_brute_force_with_varying_captions_per_image(seed):
    g = torch.Generator().manual_seed(seed)
    n = 12
    counts = torch.randint(1, 6, (n,), generator=g)
    index = torch.repeat_interleave(torch.arange(n), counts)
    images = torch.randn(n, 6, generator=g)
    texts = images[index] + 0.8 * torch.randn(len(index), 6, generator=g)
    got = retrieval_ranks(images, texts, index, block_size=5)
    want = _brute_force(images, texts, index)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_ties_count_against_the_true_item():
    # Embeddings drawn from a pool of three vectors: many exact ties (duplicate vectors).
    g = torch.Generator().manual_seed(7)
    pool = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # cosines exactly 1, 0, -1
    images = pool[torch.randint(0, 3, (10,), generator=g)]
    index = torch.arange(10).repeat_interleave(2)
    texts = pool[torch.randint(0, 3, (20,), generator=g)]
    got = retrieval_ranks(images, texts, index)
    want = _brute_force(images, texts, index)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    collapsed = retrieval_recall(torch.ones(10, 4), torch.ones(20, 4), index)
    assert collapsed["i2t_r1"] == 0.0 and collapsed["t2i_r1"] == 0.0


def test_perfect_ranking_is_all_100():
    images = torch.eye(8)
    index = torch.arange(8).repeat_interleave(5)
    out = multivic.retrieval_recall(images, images[index], index)
    assert all(out[f"{d}_r{k}"] == 100.0 for d in ("i2t", "t2i") for k in (1, 5, 10))
    assert out["rsum"] == 600.0 and out["i2t_medr"] == 1.0 and out["t2i_medr"] == 1.0


def test_recall_and_median_rank_from_ranks():
    g = torch.Generator().manual_seed(3)
    images = torch.randn(30, 5, generator=g)
    index = torch.arange(30).repeat_interleave(2)
    texts = images[index] + torch.randn(60, 5, generator=g)
    i2t, t2i = _brute_force(images, texts, index)
    out = retrieval_recall(images, texts, index)
    assert out["i2t_r5"] == pytest.approx(100.0 * (i2t < 5).double().mean().item())
    assert out["t2i_r10"] == pytest.approx(100.0 * (t2i < 10).double().mean().item())
    assert out["t2i_medr"] == math.floor(t2i.double().median().item()) + 1


def test_1k_protocol_is_the_mean_over_folds():
    g = torch.Generator().manual_seed(4)
    images = torch.randn(20, 4, generator=g)
    index = torch.arange(20).repeat_interleave(3)
    texts = images[index] + 0.5 * torch.randn(60, 4, generator=g)
    folds = retrieval_recall_folds(images, texts, index, folds=5)
    first = retrieval_recall(images[:4], texts[:12], index[:12])
    others = [retrieval_recall(images[4 * f : 4 * f + 4], texts[12 * f : 12 * f + 12], index[12 * f : 12 * f + 12] - 4 * f) for f in range(1, 5)]
    assert folds["1k/i2t_r1"] == pytest.approx((first["i2t_r1"] + sum(o["i2t_r1"] for o in others)) / 5)


def test_bad_input():
    with pytest.raises(ValueError, match="image 2 has no caption"):
        retrieval_recall(torch.randn(3, 4), torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="outside"):
        retrieval_recall(torch.randn(2, 4), torch.randn(2, 4), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="one width"):
        retrieval_recall(torch.randn(2, 4), torch.randn(2, 3), torch.tensor([0, 1]))
