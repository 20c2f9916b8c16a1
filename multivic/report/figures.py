"""The report's PNG figures of a run's history.csv, drawn with matplotlib's Agg canvas.

Figures are made with :class:`matplotlib.figure.Figure`, not pyplot: no global backend is
switched and no window opens, so a report can be made inside a notebook or a training job.
A figure whose columns the history lacks (RankMe of an older run, terms of another objective)
is left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from multivic.report.run import SIDES, RunRecord
from multivic.run_dir import atomic_replace

DPI = 110
_MANY_POINTS = 60  # fewer rows than this: draw markers, so single logged steps can be seen


@dataclass(frozen=True)
class FigureFile:
    """One written figure: its file name in the report folder, a title and a one-line caption."""

    name: str
    title: str
    caption: str


Drawer = Callable[[RunRecord, Path], "FigureFile | None"]


def draw_figures(run: RunRecord, out_dir: Path, drawers: Sequence[Drawer] | None = None) -> list[FigureFile]:
    """Write every figure the run allows into ``out_dir``; the ones written, in order.

    ``drawers``: the figure functions to try (default: the training figures of this module)."""
    import matplotlib  # fails here, early, when matplotlib is missing

    if drawers is None:
        drawers = [_loss, _learning_rate, _std, _covariance, _rankme, _throughput]
    written = []
    # Run and branch names are text, not TeX: a "$" in a folder name must not start mathtext.
    with matplotlib.rc_context({"text.parse_math": False}):
        for draw in drawers:
            figure = draw(run, out_dir)
            if figure is not None:
                written.append(figure)
    return written


# --- the figures -----------------------------------------------------------------------------------

_TERMS = (
    ("invariance", "sim_coeff", 25.0, "λ", "invariance s"),
    ("variance", "std_coeff", 25.0, "μ", "variance v"),
    ("covariance", "cov_coeff", 1.0, "ν", "covariance c"),
)


def _loss(run: RunRecord, out_dir: Path) -> FigureFile | None:
    if not run.has("loss"):
        return None
    vicreg = run.setting("loss.name", "vicreg") == "vicreg"
    terms = [t for t in _TERMS if run.has(t[0])] if vicreg else []
    # another objective's terms by their own names (its optional variance regulariser included)
    other_terms = (
        [] if vicreg else [c for c in run.history.columns if "/" not in c and c not in _NOT_TERMS and run.has(c)]
    )
    # λ·s, μ·v, ν·c add up to the total only with one coefficient per term (not per-side lists)
    weighted = bool(terms) and all(
        isinstance(run.setting(f"loss.{key}", default), (int, float)) for _, key, default, _, _ in terms
    )
    fig, axes = new_figure(1 + bool(terms or other_terms))
    steps = run.history["step"]
    ax = axes[0]
    # the total as a wide grey band behind the terms: visible also where one term is all of it
    _line(ax, steps, run.history["loss"], "loss (total)", color="black", lw=4, alpha=0.45, zorder=1, marker=None)
    if weighted:
        unused = []
        for (column, key, default, symbol, label), color in zip(terms, _TERM_COLORS):
            coeff = float(run.setting(f"loss.{key}", default))
            if coeff == 0:
                unused.append(f"{symbol} = 0")
                continue
            _line(
                ax,
                steps,
                coeff * run.history[column],
                f"{symbol}·{label.split()[1]} = {coeff:g} × {label.split()[0]}",
                color=color,
                zorder=2,
            )
        title = "total loss and its weighted terms (they add up to the total)"
        ax.set_title(title + (f"\n{', '.join(unused)}: not part of this loss" if unused else ""))
    else:
        ax.set_title("total loss")
    _finish(ax, run, "loss (unitless)")
    if terms:
        ax = axes[1]
        for (column, _, _, _, label), color in zip(terms, _TERM_COLORS):
            _line(ax, steps, run.history[column], label, color=color)
        ax.set_title("unweighted terms")
    elif other_terms:  # another objective's terms, by their own names
        ax = axes[1]
        for column, color in zip(other_terms, _OTHER_COLORS):
            _line(ax, steps, run.history[column], column.replace("_", " "), color=color)
        ax.set_title("the objective's terms")
        _finish(ax, run, "term value (unitless)")
    fig.suptitle(f"{run.name}: training loss", fontweight="bold")
    return save_figure(
        fig,
        out_dir,
        "loss.png",
        "Loss",
        "The objective over optimiser steps: the total and λ·s, μ·v, ν·c (left), the unweighted "
        "terms (right); a log scale where the values span more than a factor of 20.",
    )


_TERM_COLORS = ("tab:blue", "tab:orange", "tab:green")
_OTHER_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink")
# history columns that are not an objective's terms
_NOT_TERMS = {"step", "epoch", "lr", "loss", "skipped_steps", "bad_samples", "samples_per_s", "collapse_alarm"}


def _learning_rate(run: RunRecord, out_dir: Path) -> FigureFile | None:
    # With several optimisers, lr/<label> holds each one's and lr repeats the first's.
    columns = [c for c in run.history.columns if c.startswith("lr/") and run.has(c)] or (
        ["lr"] if run.has("lr") else []
    )
    if not columns:
        return None
    fig, (ax,) = new_figure(1, width=7.5)
    for column in columns:
        label = "learning rate" if column == "lr" else f"optimiser {column.split('/', 1)[1]}"
        _line(ax, run.history["step"], run.history[column], label)
    ax.set_title(f"{run.name}: learning rate schedule")
    _finish(ax, run, "learning rate", log=False)
    return save_figure(
        fig, out_dir, "lr.png", "Learning rate", "The learning rate of each optimiser at the logged steps."
    )


def _std(run: RunRecord, out_dir: Path) -> FigureFile | None:
    sides = [s for s in SIDES if run.has(f"{s}/std_mean")]
    if not sides:
        return None
    below = any(run.has(f"{s}/std_below_gamma") for s in sides)
    fig, axes = new_figure(
        len(sides), rows=1 + below, sharex=True, sharey="row", height_ratios=[2, 1] if below else None, extra_height=1.6
    )
    axes = np.asarray(axes).reshape(1 + below, len(sides))
    gamma, steps = run.gamma, run.history["step"]
    floor = run.setting("train.alarm_min_std")
    for i, side in enumerate(sides):
        ax = axes[0, i]
        _line(ax, steps, run.history[f"{side}/std_mean"], "mean over dimensions", color="tab:blue", lw=2)
        if run.has(f"{side}/std_min"):
            _line(ax, steps, run.history[f"{side}/std_min"], "minimum over dimensions", color="tab:blue", ls="--")
        ax.axhline(gamma, color="tab:red", lw=1.2, label=f"γ = {gamma:g} (target of the variance term)")
        if floor is not None:
            ax.axhline(float(floor), color="tab:red", lw=1, ls=":", label=f"collapse alarm under {float(floor):g}")
        _mark_alarms(ax, run, [side])
        ax.set_ylim(bottom=0, top=max(gamma * 1.15, ax.get_ylim()[1]))
        ax.set_title(f"side {run.side_label(side)}: per-dimension std of the embeddings")
        _finish(ax, run, "std of an embedding dimension" if i == 0 else None, log=False)
        ax.tick_params(labelbottom=True)  # shared x: keep the step numbers above the legend too
        if below:
            ax = axes[1, i]
            if run.has(f"{side}/std_below_gamma"):
                _line(
                    ax,
                    steps,
                    100 * run.history[f"{side}/std_below_gamma"],
                    "dimensions with std < γ",
                    color="tab:purple",
                )
            ax.set_ylim(-3, 103)
            ax.set_title(f"side {run.side_label(side)}: share of dimensions under γ")
            _finish(ax, run, "% of dimensions" if i == 0 else None, log=False)
    fig.suptitle(f"{run.name}: per-dimension std of the expander outputs (batch statistics)", fontweight="bold")
    return save_figure(
        fig,
        out_dir,
        "std.png",
        "Per-dimension std against γ",
        f"The variance term pushes every dimension's std up to γ = {gamma:g}; a std near 0 is collapse.",
    )


def _covariance(run: RunRecord, out_dir: Path) -> FigureFile | None:
    sides = [s for s in SIDES if run.has(f"{s}/cov_offdiag_rms")]
    if not sides:
        return None
    fig, (ax,) = new_figure(1, width=7.5)
    for side, color in zip(sides, ("tab:blue", "tab:orange")):
        _line(
            ax, run.history["step"], run.history[f"{side}/cov_offdiag_rms"], f"side {run.side_label(side)}", color=color
        )
    ax.set_title(f"{run.name}: RMS of the off-diagonal covariances")
    _finish(ax, run, "RMS off-diagonal covariance")
    if ax.get_yscale() == "linear":
        ax.set_ylim(bottom=0)  # the covariance term's target is 0: show the distance to it
    return save_figure(
        fig,
        out_dir,
        "covariance.png",
        "Off-diagonal covariance",
        "How correlated the embedding dimensions are (the covariance term drives this to 0).",
    )


def _rankme(run: RunRecord, out_dir: Path) -> FigureFile | None:
    """RankMe of each side's embeddings (``<side>/rankme``, solid) and, where logged, of its
    representations (``<side>/rankme_repr``, dashed)."""
    series = [
        (side, column, kind)
        for side in SIDES
        for column, kind in ((f"{side}/rankme", "embedding"), (f"{side}/rankme_repr", "representation"))
        if run.has(column)
    ]
    if not series:
        return None
    fig, (ax,) = new_figure(1, width=7.5)
    colors = {"a": "tab:blue", "b": "tab:orange"}
    for side, column, kind in series:
        _line(
            ax,
            run.history["step"],
            run.history[column],
            f"side {run.side_label(side)}: {kind}",
            color=colors[side],
            ls="-" if kind == "embedding" else "--",
        )
    _mark_alarms(ax, run, sorted({side for side, _, _ in series}))
    ax.set_ylim(bottom=0)
    ax.set_title(f"{run.name}: RankMe of the batch (effective dimensions used)")
    _finish(ax, run, "RankMe (effective number of dimensions)", log=False)
    return save_figure(
        fig,
        out_dir,
        "rankme.png",
        "RankMe",
        "exp of the entropy of the normalised singular values of the uncentred batch (embeddings: expander "
        "outputs; representations: encoder outputs); it cannot exceed min(batch rows, width), and near 1 is collapse.",
    )


def _throughput(run: RunRecord, out_dir: Path) -> FigureFile | None:
    if not run.has("samples_per_s"):
        return None
    fig, (ax,) = new_figure(1, width=7.5)
    _line(ax, run.history["step"], run.history["samples_per_s"], "training throughput", color="tab:gray")
    ax.set_ylim(bottom=0)
    ax.set_title(f"{run.name}: training throughput")
    _finish(ax, run, "samples / s", log=False)
    return save_figure(
        fig, out_dir, "throughput.png", "Throughput", "Training samples per second between logged steps."
    )


# --- shared drawing helpers ------------------------------------------------------------------------


def new_figure(
    cols: int,
    rows: int = 1,
    width: float | None = None,
    sharex: bool = False,
    sharey: str | bool = False,
    height_ratios: list[float] | None = None,
    extra_height: float = 0.0,
):
    from matplotlib.figure import Figure

    width = width or (6.4 * cols)
    height = 4.3 * (sum(height_ratios) / max(height_ratios) if height_ratios else rows) + 0.4 + extra_height
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=sharex, sharey=sharey, height_ratios=height_ratios)
    return fig, list(axes.flat)


def _line(ax, x, y, label: str, **style) -> None:
    if len(x) < _MANY_POINTS:
        style.setdefault("marker", "o")
        style.setdefault("ms", 3.5)
    style.setdefault("lw", 1.5)
    ax.plot(np.asarray(x, dtype=float), np.asarray(y, dtype=float), label=label, **style)


def _finish(ax, run: RunRecord, ylabel: str | None, log: bool = True) -> None:
    """Axis labels, grid, a legend below the axes (never over the data), epoch boundaries; a log y
    scale where every value is positive and they span more than a factor of 20, with plain
    numbers as tick labels."""
    from matplotlib import ticker

    if log:
        values = np.concatenate([line.get_ydata() for line in ax.get_lines()] or [np.array([])]).astype(float)
        values = values[np.isfinite(values)]
        if values.size and values.min() > 0 and values.max() / values.min() > 20:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_locator(ticker.LogLocator(base=10, subs=tuple(range(1, 10))))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))  # no "1e-3" offset above the axis
    ax.set_xlabel("optimiser step")
    ax.set_xlim(left=0)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if ax.get_yscale() == "log":
        ax.grid(True, which="minor", alpha=0.12)
    handles, labels = ax.get_legend_handles_labels()
    if len(handles) > 1:
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    _epochs(ax, run)


def _epochs(ax, run: RunRecord) -> None:
    """Faint lines where epochs begin and a top axis numbering them from 1 (history.csv's epoch + 1).

    An epoch begins between the last logged step of the one before and its own first logged step:
    the line is drawn halfway (exact to half of train.log_every steps)."""
    if not run.has("epoch"):
        return
    steps = run.history.groupby("epoch", sort=True)["step"]
    first, last = steps.min(), steps.max()
    if len(first) < 2:
        return
    starts = [0.0] + [(float(last.iloc[i - 1]) + float(first.iloc[i])) / 2 for i in range(1, len(first))]
    numbers = [int(e) + 1 for e in first.index]
    every = max(1, int(np.ceil(len(starts) / 8)))  # "epoch 12" labels collide beyond about 8
    for x in starts[every::every]:
        ax.axvline(x, color="0.6", lw=0.8, ls=(0, (4, 4)), zorder=0)
    top = ax.secondary_xaxis("top")
    top.set_xticks(starts[::every], labels=[f"epoch {n}" for n in numbers[::every]])
    top.tick_params(labelsize="small", length=3)


_ALARM_SIDE = re.compile(r"\((a|b)\):")


def _mark_alarms(ax, run: RunRecord, sides: tuple[str, ...] | list[str]) -> None:
    """Light red bands behind the data over the logged steps where the collapse alarm named one of
    ``sides``; consecutive alarmed rows make one band."""
    alarms = run.alarms()
    flagged = {
        int(s)
        for s, text in zip(alarms["step"], alarms["collapse_alarm"])
        if set(_ALARM_SIDE.findall(text)) & set(sides)
    }
    if not flagged:
        return
    steps = run.history["step"].to_numpy(dtype=float)
    half = float(np.median(np.diff(steps))) / 2 if len(steps) > 1 else 0.5
    min_width = 0.008 * steps.max()  # a single flagged row stays visible
    label = "collapse alarm" if len(sides) == 1 else "collapse alarm (either side)"
    start = None
    for i, step in enumerate(steps):
        on = int(step) in flagged
        if on and start is None:
            start = step
        last = i == len(steps) - 1 or int(steps[i + 1]) not in flagged
        if on and last:
            lo, hi = max(start - half, 0.0), min(step + half, steps.max())  # not past the last logged step
            if hi - lo < min_width:
                lo, hi = max(0.0, (lo + hi) / 2 - min_width / 2), (lo + hi) / 2 + min_width / 2
            ax.axvspan(lo, hi, color="tab:red", alpha=0.12, lw=0, zorder=0, label=label)
            label, start = None, None


def save_figure(fig, out_dir: Path, name: str, title: str, caption: str) -> FigureFile:
    with atomic_replace(out_dir / name) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return FigureFile(name, title, caption)
