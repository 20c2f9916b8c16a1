"""The report's figures of the end of a run, from what evaluation kept beside metrics.json.

- ``spectrum.png``: each branch's singular values of its representations and embeddings on the
  evaluation split (uncentred, largest first, log scale): the picture of dimensional collapse;
- ``std_histogram.png``: each branch's per-dimension std of the embeddings against γ;
- ``retrieval_examples.png``: a few queries each way and their top items, true matches in green.

Runs evaluated before these were kept (or not evaluated) simply have none of them.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from multivic.evaluation.examples import open_thumbnail
from multivic.report.figures import FigureFile, new_figure, save_figure
from multivic.report.run import SIDES, RunRecord

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def _branches(run: RunRecord) -> list[str]:
    """The evaluated branch names, side a's first."""
    names = run.evaluated_branches()
    order = [run.setting(f"model.branch_{s}.name") for s in SIDES]
    return sorted(names, key=lambda n: order.index(n) if n in order else len(order))


def spectrum(run: RunRecord, out_dir: Path) -> FigureFile | None:
    branches = [b for b in _branches(run) if f"{b}/embedding_singular_values" in run.arrays]
    if not branches:
        return None
    from matplotlib import ticker

    fig, axes = new_figure(2, width=12.8)
    for ax, (kind, label) in zip(
        axes, (("representation", "encoder outputs (representations)"), ("embedding", "expander outputs (embeddings)"))
    ):
        for branch, color in zip(branches, _COLORS):
            s = run.arrays.get(f"{branch}/{kind}_singular_values")
            if s is None or not np.isfinite(s).all() or s.max() <= 0:
                continue
            rank = run.metrics.get(f"{branch}/rankme_repr" if kind == "representation" else f"{branch}/rankme")
            extra = f", RankMe {rank:.1f}" if isinstance(rank, (int, float)) else ""
            k = np.arange(1, len(s) + 1)
            ax.plot(k, s / s.max(), color=color, lw=1.6, label=f"{branch} ({len(s)} values{extra})")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))  # mathtext is off in reports
        ax.set_xlabel("singular value index (largest first)")
        ax.set_ylabel("σ_k / σ_1")
        ax.set_title(label)
        ax.grid(True, which="both", alpha=0.25)
        if ax.get_lines():
            ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.suptitle(f"{run.name}: singular-value spectra on the evaluation split", fontweight="bold")
    return save_figure(
        fig,
        out_dir,
        "spectrum.png",
        "Singular-value spectra",
        "Singular values of the uncentred evaluation outputs relative to the largest: a spectrum that "
        "drops by orders of magnitude after a few values means the outputs use few dimensions "
        "(dimensional collapse); a flat one means every dimension carries signal.",
    )


def std_histogram(run: RunRecord, out_dir: Path) -> FigureFile | None:
    branches = [b for b in _branches(run) if f"{b}/embedding_std" in run.arrays]
    if not branches:
        return None
    gamma = run.gamma
    fig, axes = new_figure(len(branches), width=6.4 * len(branches))
    for ax, branch, color in zip(axes, branches, _COLORS):
        std = run.arrays[f"{branch}/embedding_std"]
        std = std[np.isfinite(std)]
        top = max(float(std.max()) if std.size else 0.0, gamma) * 1.1
        ax.hist(std, bins=np.linspace(0, top, 41), color=color, alpha=0.8)
        ax.axvline(gamma, color="tab:red", lw=1.2, label=f"γ = {gamma:g}")
        below = float((std < gamma).mean() * 100) if std.size else float("nan")
        ax.set_title(f"{branch}: {std.size} dimensions, {below:.0f}% under γ, mean {std.mean():.3g}")
        ax.set_xlabel("std of an embedding dimension on the evaluation split")
        ax.set_ylabel("dimensions")
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize="small")
    fig.suptitle(f"{run.name}: per-dimension std at the end of training", fontweight="bold")
    return save_figure(
        fig,
        out_dir,
        "std_histogram.png",
        "Per-dimension std at the end",
        f"Each embedding dimension's std on the evaluation split; the variance term pushes them to "
        f"γ = {gamma:g}, a pile near 0 is collapsed dimensions.",
    )


def retrieval_examples(run: RunRecord, out_dir: Path) -> FigureFile | None:
    if not run.examples:
        return None
    rows = [(d, q) for d in run.examples for q in d["queries"]]
    cols = 1 + max(len(q["top"]) for _, q in rows)
    fig, axes = new_figure(cols, rows=len(rows), width=2.1 * cols)
    fig.set_figheight(1.9 * len(rows) + 0.6)
    grid = np.asarray(axes).reshape(len(rows), cols)
    for r, (direction, query) in enumerate(rows):
        cells = [(query["query"], None)] + [(item, item["correct"]) for item in query["top"]]
        for c in range(cols):
            ax = grid[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(cells):
                ax.axis("off")
                continue
            item, correct = cells[c]
            if "thumbnail" in item:
                ax.imshow(np.asarray(open_thumbnail(run.examples_dir, item["thumbnail"])))
            else:
                text = item.get("text", f"{direction['item_kind' if c else 'query_kind']} #{item['index']}")
                ax.text(0.5, 0.5, textwrap.fill(text, 22), ha="center", va="center", fontsize=7.5, wrap=True)
            color = "black" if correct is None else ("tab:green" if correct else "tab:red")
            for spine in ax.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(1.5 if correct is None else 3)
            if c == 0:
                ax.set_ylabel(f"{direction['query_kind']} query", fontsize=8)
            if r == 0 or rows[r - 1][0] is not direction:
                ax.set_title("query" if c == 0 else f"top {c} {direction['item_kind']}", fontsize=8)
    fig.suptitle(f"{run.name}: retrieval examples (green: a true match, red: not)", fontweight="bold")
    return save_figure(
        fig,
        out_dir,
        "retrieval_examples.png",
        "Retrieval examples",
        "Queries spread evenly over the evaluation set, each way, with their top items by cosine "
        "similarity; a green frame marks a true match.",
    )
