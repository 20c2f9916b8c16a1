"""What the contrastive objectives (InfoNCE, VSE++) share: this process's rows of the cosine
similarities of the gathered batch, and which column holds each row's pair.

Each process computes only its own n_local rows against all n gathered columns (open_clip's
``local_loss``), so the similarity matrices cost O(n²d/W) per process instead of O(n²d).

Not a plug-in (the leading underscore keeps the registry from importing it as one).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from multivic.distributed import rank


def local_rows(n_local: int, device: torch.device, shards: int) -> tuple[slice, Tensor]:
    """This process's rows of the gathered batch and their positive columns (labels) [n_local]."""
    start = rank() * n_local if shards > 1 else 0
    return slice(start, start + n_local), torch.arange(start, start + n_local, device=device)


def cosine_rows(z_a: Tensor, z_b: Tensor, rows: slice) -> tuple[Tensor, Tensor]:
    """Cosine similarities of rows ``rows`` of each side against all rows of the other:
    (a[rows] · b^T, b[rows] · a^T), each [|rows|, n], from the gathered raw embeddings [n, d]."""
    a, b = F.normalize(z_a, dim=1), F.normalize(z_b, dim=1)
    return a[rows] @ b.T, b[rows] @ a.T


def own_cosine_rows(z_a: Tensor, z_b: Tensor, n_local: int, shards: int) -> tuple[Tensor, Tensor, Tensor]:
    """(sim_ab, sim_ba, positives): this process's ``n_local`` rows of the cosine similarities
    of the gathered batch ``z_a``, ``z_b`` [n, d] (each [n_local, n], see :func:`cosine_rows`)
    and the column of each row's pair [n_local]."""
    rows, positives = local_rows(n_local, z_a.device, shards)
    sim_ab, sim_ba = cosine_rows(z_a, z_b, rows)
    return sim_ab, sim_ba, positives
