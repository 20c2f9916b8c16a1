"""The order metrics are shown in, by the report's evaluation table and ``multivic compare``.

A metric key is ``<branch>/<name>`` (``img/linear_top1``) or a bare name for metrics of both
branches together (retrieval's ``i2t_r1``). Within a branch, the metrics a paper's table leads
with come first; the others follow by name.
"""

from __future__ import annotations

LEADING = (
    "linear_top1",
    "linear_top5",
    "knn_top1",
    "i2t_r1",
    "i2t_r5",
    "i2t_r10",
    "t2i_r1",
    "t2i_r5",
    "t2i_r10",
    "rsum",
    "i2t_medr",
    "t2i_medr",
)


def metric_sort_key(key: str) -> tuple[str, int, str]:
    """Sort key of a metric ``<branch>/<name>``: by branch, then the leading metrics, then by name."""
    branch, _, name = key.rpartition("/")
    return (branch, LEADING.index(name) if name in LEADING else len(LEADING), name)
