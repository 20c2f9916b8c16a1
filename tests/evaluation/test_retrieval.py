"""Retrieval R@k against a brute-force ranking, ties, several captions per image, a perfect case."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import multivic
from multivic.evaluation.retrieval import median_rank, retrieval_ranks, retrieval_recall, retrieval_recall_folds


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
    # VSE++'s formula over 0-based ranks (np.median: the mean of the two middle ranks for 60 captions).
    assert out["t2i_medr"] == np.floor(np.median(t2i.numpy())) + 1
    assert out["i2t_medr"] == np.floor(np.median(i2t.numpy())) + 1


@pytest.mark.parametrize(
    "ranks, medr",
    [
        # 0-based ranks; by hand: sort, take the middle one (or the mean of the two middle ones), floor, + 1.
        ([0], 1),
        ([4, 0, 2], 3),  # odd: middle 2
        ([0, 1], 1),  # middle 0 and 1: 0.5, floor 0
        ([1, 2], 2),  # 1.5, floor 1
        ([0, 2], 2),  # 1.0: the lower middle alone (torch's median) would give 1
        ([3, 0, 0, 2], 2),  # sorted 0 0 2 3: middle 0 and 2, mean 1; the lower middle would give 1
        ([8, 1, 3, 0], 3),  # sorted 0 1 3 8: 2.0; the 1-based ranks 1 2 4 9 have median 3.0
        ([0, 0, 5, 6, 9, 9], 6),  # middle 5 and 6: 5.5, floor 5
    ],
)
def test_median_rank_hand_computed(ranks, medr):
    assert median_rank(torch.tensor(ranks)) == medr
    assert median_rank(torch.tensor(ranks)) == np.floor(np.median(ranks)) + 1  # VSE++'s expression


def test_median_rank_of_an_even_count_from_embeddings():
    # One-hot images; caption j scores its own image 0.5 (after normalising, the relative order is what counts)
    # and is beaten by the images listed before it: text→image 0-based ranks 0, 0, 2, 3, by construction.
    images = torch.eye(4)
    texts = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.9, 0.8, 0.5, 0.0],
            [0.9, 0.8, 0.7, 0.5],
        ]
    )
    index = torch.arange(4)
    i2t, t2i = retrieval_ranks(images, texts, index)
    # image→text, by hand (cosines, |c2| = 1.30, |c3| = 1.48): image 2 scores caption 3 at 0.7 / 1.48 = 0.47, above
    # its own 0.5 / 1.30 = 0.38; images 0, 1 and 3 score their own caption highest.
    assert t2i.tolist() == [0, 0, 2, 3] and i2t.tolist() == [0, 0, 1, 0]
    out = retrieval_recall(images, texts, index)
    assert out["t2i_medr"] == 2.0  # middle ranks 0 and 2: floor(1.0) + 1; the lower middle alone gives 1
    assert out["i2t_medr"] == 1.0  # sorted 0 0 0 1: middle 0 and 0
    assert out["t2i_r1"] == 50.0 and out["t2i_r5"] == 100.0 and out["i2t_r1"] == 75.0


def test_1k_protocol_is_the_mean_over_folds():
    g = torch.Generator().manual_seed(4)
    images = torch.randn(20, 4, generator=g)
    index = torch.arange(20).repeat_interleave(3)
    texts = images[index] + 0.5 * torch.randn(60, 4, generator=g)
    folds = retrieval_recall_folds(images, texts, index, folds=5)
    first = retrieval_recall(images[:4], texts[:12], index[:12])
    others = [
        retrieval_recall(images[4 * f : 4 * f + 4], texts[12 * f : 12 * f + 12], index[12 * f : 12 * f + 12] - 4 * f)
        for f in range(1, 5)
    ]
    assert folds["1k/i2t_r1"] == pytest.approx((first["i2t_r1"] + sum(o["i2t_r1"] for o in others)) / 5)


def test_bad_input():
    with pytest.raises(ValueError, match="image 2 has no caption"):
        retrieval_recall(torch.randn(3, 4), torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="outside"):
        retrieval_recall(torch.randn(2, 4), torch.randn(2, 4), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="median rank of no queries"):
        median_rank(torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="one width"):
        retrieval_recall(torch.randn(2, 4), torch.randn(2, 3), torch.tensor([0, 1]))
