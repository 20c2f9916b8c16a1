"""Cross-modal retrieval recall under the VSE++ protocol (Faghri et al.), used by VICReg's COCO table.

N images, M captions, ``caption_image_index[j]`` the image caption j describes (any number of
captions per image). Similarity is the cosine of the two embeddings.

- image→text: for each image, rank all M captions; its rank is that of its best-ranked true
  caption: the number of *other images'* captions scoring at least as high.
- text→image: for each caption, rank all N images; its rank is the number of *other* images
  scoring at least as high as its own.

Ties count against the true item (a collapsed model with all similarities equal scores 0, not
100). R@k is the percentage of queries with rank < k; rsum is the sum of the six recalls. The
median rank (medr) is VSE++'s: ``floor(np.median(rank)) + 1`` over the 0-based ranks, where the
median of an even count is the mean of the two middle ranks. That is the usual median of the
1-based ranks rounded down: 1-based ranks 1, 2, 4, 9 give medr 3 (median 3.0), and 1, 2 give 1
(median 1.5). The 1K protocol averages the metrics over 5 folds of consecutive images.

Similarities are computed in blocks, so 5K images × 25K captions stays within a few hundred MB.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _check(images: Tensor, texts: Tensor, index: Tensor) -> None:
    if images.dim() != 2 or texts.dim() != 2 or images.shape[1] != texts.shape[1]:
        raise ValueError(
            f"expected image [N, D] and text [M, D] embeddings of one width; got {tuple(images.shape)} and "
            f"{tuple(texts.shape)}"
        )
    if index.shape != (texts.shape[0],):
        raise ValueError(
            f"caption_image_index must have one entry per caption ({texts.shape[0]}); got {tuple(index.shape)}"
        )
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= images.shape[0]):
        raise ValueError(f"caption_image_index holds values outside [0, {images.shape[0]})")
    counts = torch.bincount(index, minlength=images.shape[0])
    if bool((counts == 0).any()):
        first = int((counts == 0).nonzero()[0])
        raise ValueError(f"image {first} has no caption: every image needs at least one")


@torch.no_grad()
def retrieval_ranks(
    image_embeddings: Tensor, text_embeddings: Tensor, caption_image_index: Tensor, block_size: int = 512
) -> tuple[Tensor, Tensor]:
    """0-based ranks: [N] image→text and [M] text→image (see the module docstring)."""
    index = torch.as_tensor(caption_image_index, dtype=torch.long, device=image_embeddings.device)
    _check(image_embeddings, text_embeddings, index)
    images = F.normalize(image_embeddings.float(), dim=1)
    texts = F.normalize(text_embeddings.float(), dim=1)
    n = images.shape[0]
    i2t = []
    for start in range(0, n, block_size):
        sims = images[start : start + block_size] @ texts.T  # [b, M]
        ids = torch.arange(start, start + sims.shape[0], device=sims.device)
        true = index[None, :] == ids[:, None]
        best_true = sims.masked_fill(~true, float("-inf")).max(dim=1).values
        i2t.append(((sims >= best_true[:, None]) & ~true).sum(dim=1))
    t2i = []
    for start in range(0, texts.shape[0], block_size):
        sims = texts[start : start + block_size] @ images.T  # [b, N]
        own = index[start : start + sims.shape[0]]
        true_sim = sims.gather(1, own[:, None])
        t2i.append((sims >= true_sim).sum(dim=1) - 1)  # the true image itself is counted by >=
    return torch.cat(i2t).cpu(), torch.cat(t2i).cpu()


def median_rank(ranks: Tensor) -> float:
    """VSE++'s median rank of [Q] 0-based ranks: ``floor(np.median(ranks)) + 1``, 1-based.

    ``Tensor.median`` returns the lower middle value for an even count; np.median, which VSE++
    uses, the mean of the two middle values, so the two middle ranks are averaged here. With
    integer ranks a <= b in the middle, floor((a + b) / 2) + 1 == (a + b) // 2 + 1, which is also
    floor of the median of the 1-based ranks (floor(x) + 1 == floor(x + 1), and adding 1 to every
    rank adds 1 to the median): computed in integers, so no float rounding can move it.
    """
    if ranks.numel() == 0:
        raise ValueError("median rank of no queries")
    s = ranks.flatten().long().sort().values
    q = s.numel()
    return float((int(s[(q - 1) // 2]) + int(s[q // 2])) // 2 + 1)


def _summary(ranks: Tensor, ks: Sequence[int], prefix: str) -> dict[str, float]:
    out = {f"{prefix}_r{k}": 100.0 * (ranks < k).float().mean().item() for k in ks}
    out[f"{prefix}_medr"] = median_rank(ranks)
    return out


def retrieval_recall(
    image_embeddings: Tensor,
    text_embeddings: Tensor,
    caption_image_index: Tensor | Sequence[int],
    ks: Sequence[int] = (1, 5, 10),
    block_size: int = 512,
) -> dict[str, float]:
    """R@k in both directions (percent), rsum and median ranks: keys i2t_r1, ..., t2i_r10, rsum,
    i2t_medr, t2i_medr.

    Args:
        image_embeddings: [N, D]; text_embeddings: [M, D].
        caption_image_index: [M] ints, the row of the image each caption describes.
    """
    index = torch.as_tensor(caption_image_index, dtype=torch.long)
    i2t, t2i = retrieval_ranks(image_embeddings, text_embeddings, index, block_size)
    out = {**_summary(i2t, ks, "i2t"), **_summary(t2i, ks, "t2i")}
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in ks)
    return out


def retrieval_recall_folds(
    image_embeddings: Tensor,
    text_embeddings: Tensor,
    caption_image_index: Tensor | Sequence[int],
    folds: int = 5,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """The 1K protocol: the mean of :func:`retrieval_recall` over ``folds`` blocks of consecutive
    images (1000 each on the 5K test set), each with its own captions; keys prefixed "1k/"."""
    index = torch.as_tensor(caption_image_index, dtype=torch.long)
    n = image_embeddings.shape[0]
    if n % folds:
        raise ValueError(f"{n} images do not split into {folds} equal folds")
    size = n // folds
    runs = []
    for f in range(folds):
        keep = (index >= f * size) & (index < (f + 1) * size)
        runs.append(
            retrieval_recall(
                image_embeddings[f * size : (f + 1) * size], text_embeddings[keep], index[keep] - f * size, ks
            )
        )
    return {f"1k/{k}": sum(r[k] for r in runs) / folds for k in runs[0]}
