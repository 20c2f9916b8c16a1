"""Evaluation protocols on cases whose answer is known, and against brute force."""

import torch
import torch.nn.functional as F

from multivic.evaluation import collapse_stats, knn_classify, linear_probe
from multivic.evaluation.linear_probe import topk_accuracy


def _clusters(n_per, classes, dim, spread, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 5
    x = torch.cat([centres[c] + spread * torch.randn(n_per, dim, generator=g) for c in range(classes)])
    y = torch.arange(classes).repeat_interleave(n_per)
    return x, y


def test_linear_probe_separable_clusters_is_perfect():
    x, y = _clusters(40, 4, 16, 0.1, seed=0)
    xt, yt = _clusters(10, 4, 16, 0.1, seed=0)
    out = linear_probe(x, y, xt, yt, num_classes=4, epochs=30)
    assert out == {"top1": 100.0, "top5": 100.0}


def test_linear_probe_on_noise_is_near_chance():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(400, 8, generator=g), torch.randint(0, 10, (400,), generator=g)
    xt, yt = torch.randn(400, 8, generator=g), torch.randint(0, 10, (400,), generator=g)
    assert linear_probe(x, y, xt, yt, num_classes=10, epochs=20)["top1"] < 25


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    labels = torch.tensor([0, 1, 2])
    out = topk_accuracy(logits, labels, 3)
    assert abs(out["top1"] - 100 / 3) < 1e-4 and out["top5"] == 100.0


def _knn_brute_force(bank, labels, queries, classes, k, t):
    preds = []
    for q in queries:
        sims = [(F.cosine_similarity(q, b, dim=0).item(), int(label)) for b, label in zip(bank, labels)]
        sims.sort(key=lambda s: -s[0])
        votes = [0.0] * classes
        for s, label in sims[:k]:
            votes[label] += torch.exp(torch.tensor(s / t)).item()
        preds.append(max(range(classes), key=lambda c: votes[c]))
    return torch.tensor(preds)


def test_knn_matches_brute_force():
    g = torch.Generator().manual_seed(2)
    bank, labels = torch.randn(60, 5, generator=g), torch.randint(0, 4, (60,), generator=g)
    queries = torch.randn(25, 5, generator=g)
    got = knn_classify(bank, labels, queries, 4, k=7, temperature=0.5, block_size=8)
    assert torch.equal(got, _knn_brute_force(bank, labels, queries, 4, 7, 0.5))


def test_knn_on_clusters_is_perfect_and_k_is_capped():
    x, y = _clusters(5, 3, 8, 0.05, seed=3)
    xt, yt = _clusters(4, 3, 8, 0.05, seed=3)
    assert torch.equal(knn_classify(x, y, xt, 3, k=200), yt)


def test_std_statistics_on_known_scales():
    g = torch.Generator().manual_seed(4)
    z = torch.randn(2000, 4, generator=g) * torch.tensor([1.0, 2.0, 3.0, 4.0])
    s = collapse_stats(z, gamma=2.5)
    assert abs(s["std_mean"] - 2.5) < 0.1 and abs(s["std_min"] - 1.0) < 0.05
    assert s["std_below_gamma"] == 0.5  # the dimensions of std 1 and 2
    assert s["corr_offdiag_rms"] < 0.05  # independent dimensions
