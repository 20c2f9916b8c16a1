"""``multivic report RUN_DIR``: figures of a run's training and a page that shows them.

    RUN_DIR/report/loss.png, lr.png, std.png, covariance.png, rankme.png, throughput.png
                   spectrum.png, std_histogram.png (from eval_arrays.safetensors),
                   retrieval_examples.png (from eval_examples/, retrieval runs)
    RUN_DIR/report/report.html   self-contained (figures embedded): settings, training summary,
                                 evaluation table, collapse alarms, figures
    RUN_DIR/report/report.md     the same page in Markdown, figures referenced beside it

- :mod:`~multivic.report.run`: a run directory read as data (config, history, metrics);
- :mod:`~multivic.report.figures`: the PNG figures of training (matplotlib, no pyplot);
- :mod:`~multivic.report.evaluation_figures`: those of the end of the run (spectra, std, examples);
- :mod:`~multivic.report.page`: the HTML and Markdown pages.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from multivic.errors import MultivicError, RunDirError
from multivic.files import leads_outside
from multivic.report.evaluation_figures import retrieval_examples, spectrum, std_histogram
from multivic.report.figures import FigureFile, draw_figures
from multivic.report.page import render_html, render_markdown
from multivic.report.run import RunRecord, read_run
from multivic.run_dir import atomic_write_text

logger = logging.getLogger("multivic")

__all__ = ["Report", "RunRecord", "read_run", "write_report"]


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote: the folder, the figures and the two pages."""

    out_dir: Path
    figures: list[FigureFile]
    html: Path
    markdown: Path


def write_report(run_dir: str | Path, out_dir: str | Path | None = None) -> Report:
    """Write the report of ``run_dir`` into ``out_dir`` (default ``RUN_DIR/report/``).

    Without matplotlib the pages are still written, without figures, and a warning says how to
    get them.
    """
    run = read_run(run_dir)
    out = Path(out_dir) if out_dir is not None else _default_out(run.root)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MultivicError(
            f"cannot write the report into {out}: {exc.strerror or exc}; pass another folder with --out"
        ) from None
    note = ""
    try:
        figures = draw_figures(run, out) + draw_figures(run, out, [spectrum, std_histogram, retrieval_examples])
    except ImportError as exc:
        if getattr(exc, "name", "") != "matplotlib" and "matplotlib" not in str(exc):
            raise
        note = "No figures: matplotlib is not installed (pip install matplotlib, then run multivic report again)."
        logger.warning(note)
        figures = []
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, render_html(run, figures, out, note))
    atomic_write_text(md_path, render_markdown(run, figures, note))
    return Report(out, figures, html_path, md_path)


def _default_out(root: Path) -> Path:
    """RUN_DIR/report, refused when it leads outside the run directory (a symbolic link in a run
    directory from elsewhere must not make the report write into another folder): the user may
    still name any folder with --out."""
    out = root / "report"
    if os.path.lexists(out) and leads_outside(out, root):
        raise RunDirError(
            f"{out} is a symbolic link to {os.path.realpath(out)}, outside the run directory: the report is "
            "written only inside it; delete the link, or pass the folder you want with --out"
        )
    return out
