"""The report's pages: a self-contained report.html (figures embedded) and report.md beside it.

Both show the run's key settings, a short summary of training, the figures, the evaluation
table of metrics.json (one row per branch, from the ``<branch>/<metric>`` keys) and every
collapse alarm of the history.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

import numpy as np

from multivic.report.figures import FigureFile
from multivic.report.metrics import metric_sort_key
from multivic.report.run import SIDES, RunRecord
from multivic.trust import terminal_safe

_NO_BRANCH = "(all branches)"  # metrics without a branch prefix, e.g. retrieval's i2t_r1


def key_settings(run: RunRecord) -> list[tuple[str, str]]:
    """(name, value) of the settings a reader of the report needs first."""
    s = run.setting
    rows: list[tuple[str, str]] = []
    for side in SIDES:
        encoder = s(f"model.branch_{side}.encoder")
        if encoder is not None:
            expander = s(f"model.branch_{side}.expander", "?")
            rows.append((f"branch {run.side_label(side)}", f"encoder {encoder}, expander {expander}"))
    if s("model.shared") is not None:
        rows.append(("weights shared between the sides", "yes" if s("model.shared") else "no"))
    loss = s("loss.name", "vicreg")
    if loss == "vicreg":
        rows.append(
            (
                "loss",
                f"VICReg: λ (sim_coeff) = {_setting(s('loss.sim_coeff', 25.0))}, μ (std_coeff) = "
                f"{_setting(s('loss.std_coeff', 25.0))}, ν (cov_coeff) = {_setting(s('loss.cov_coeff', 1.0))}, "
                f"γ = {run.gamma:g}, variance convention {s('loss.variance_convention', 'released')}",
            )
        )
    else:
        options = {k: v for k, v in (s("loss", {}) or {}).items() if k != "name"}
        rows.append(
            (
                "loss",
                f"{loss}" + (": " + ", ".join(f"{k} = {_setting(v)}" for k, v in options.items()) if options else ""),
            )
        )
    rows.append(("batch size", str(s("train.batch_size", "?"))))
    rows.append(("epochs", str(s("train.epochs", "?"))))
    if s("optim.name") is not None:
        rows.append(
            (
                "optimiser",
                f"{s('optim.name')}, base lr {s('optim.base_lr', '?')}, weight decay {s('optim.weight_decay', '?')}, "
                f"warm-up {s('optim.warmup_epochs', '?')} epochs",
            )
        )
    data = s("data.root") or s("data.builtin")
    if s("data.format") is not None:
        rows.append(("data", f"{s('data.format')}: {data}" if data else str(s("data.format"))))
    if s("train.mixed_precision") is not None:
        rows.append(("mixed precision", str(s("train.mixed_precision"))))
    if s("seed") is not None:
        rows.append(("seed", str(s("seed"))))
    return rows


def _setting(value: Any) -> str:
    """A config value as a reader wants it: numbers with :g, per-side lists as [a, b]."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def training_summary(run: RunRecord) -> list[tuple[str, str]]:
    """(name, value) of what the history says about the run as a whole."""
    h = run.history
    last = h.iloc[-1]
    rows = [
        (
            "logged steps",
            f"{len(h)} (last: step {int(last['step'])}"
            + (
                f", epoch {int(last['epoch']) + 1} of {run.setting('train.epochs', '?')})"
                if run.has("epoch") and np.isfinite(last["epoch"])
                else ")"
            ),
        )
    ]
    if run.has("loss"):
        rows.append(
            (
                "loss",
                f"{_number(h['loss'].dropna().iloc[0])} at the first logged step, "
                f"{_number(h['loss'].dropna().iloc[-1])} at the last",
            )
        )
    for side in SIDES:
        if run.has(f"{side}/std_mean"):
            rows.append(
                (
                    f"std of side {run.side_label(side)} at the end",
                    f"mean {_number(h[f'{side}/std_mean'].dropna().iloc[-1])}, γ = {run.gamma:g}",
                )
            )
    if run.has("samples_per_s"):
        rows.append(("throughput", f"median {float(np.nanmedian(h['samples_per_s'])):.0f} samples/s"))
    for column, what in (("skipped_steps", "non-finite steps skipped"), ("bad_samples", "unreadable samples replaced")):
        if run.has(column):
            rows.append((what, str(int(h[column].dropna().iloc[-1]))))
    rows.append(("collapse alarms", str(len(run.alarms())) if "collapse_alarm" in h else "not recorded by this run"))
    return rows


MAX_ALARM_ROWS = 50


def alarm_rows(run: RunRecord) -> tuple[list[str], list[list[str]], str]:
    """The collapse-alarm table (step, epoch counted from 1 as in the figures, alarm text), at most
    :data:`MAX_ALARM_ROWS` rows, and a line saying how many more history.csv holds ("" when none)."""
    alarms = run.alarms()
    rows = [
        [_number(step), _number(epoch + 1) if np.isfinite(epoch) else "", text]
        for step, epoch, text in alarms.head(MAX_ALARM_ROWS).itertuples(index=False)
    ]
    more = len(alarms) - len(rows)
    note = (
        (
            f"... and {more} more flagged steps, the last at step {_number(alarms['step'].iloc[-1])} "
            "(history.csv's collapse_alarm column)"
        )
        if more > 0
        else ""
    )
    return ["step", "epoch", "alarm"], rows, note


def metrics_table(metrics: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The evaluation table: header (``branch``, metric names) and one row per branch prefix."""
    rows: dict[str, dict[str, str]] = {}
    names: list[str] = []
    for key in sorted(metrics, key=metric_sort_key):
        branch, _, metric = key.rpartition("/")
        rows.setdefault(branch or _NO_BRANCH, {})[metric] = _number(metrics[key])
        if metric not in names:
            names.append(metric)
    order = sorted(names, key=lambda n: metric_sort_key(f"/{n}"))
    return ["branch", *order], [[b, *(r.get(n, "") for n in order)] for b, r in rows.items()]


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return str(value)
    value = float(value)
    if not np.isfinite(value):
        return str(value)
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4g}"


# --- HTML ------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; } td, th { border: 1px solid #ccc; padding: .25em .6em; }
th { background: #f3f3f3; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .92em; } .alarm { color: #b00020; } code { background: #f6f6f6; padding: 0 .2em; }
"""


def render_html(run: RunRecord, figures: list[FigureFile], out_dir: Path, note: str = "") -> str:
    """The page as one HTML document; figures are embedded (base64), so the file stands alone."""
    e = _h
    parts = [
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>multivic report: {e(run.name)}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Run <code>{e(run.name)}</code></h1>",
        f"<p>Run directory: <code>{e(str(run.root.resolve()))}</code></p>",
    ]
    parts += [
        "<h2>Settings</h2>",
        _html_pairs(key_settings(run)),
        "<h2>Training</h2>",
        _html_pairs(training_summary(run)),
    ]
    parts.append("<h2>Evaluation</h2>")
    if run.metrics:
        header, rows = metrics_table(run.metrics)
        parts.append(_html_table(header, rows))
    else:
        parts.append("<p>No metrics.json: the run has not been evaluated yet (<code>multivic eval RUN_DIR</code>).</p>")
    parts.append("<h2>Collapse alarms</h2>")
    alarms = run.alarms()
    if "collapse_alarm" not in run.history:
        parts.append("<p>This run's history has no <code>collapse_alarm</code> column.</p>")
    elif alarms.empty:
        parts.append("<p>None: no logged step was flagged.</p>")
    else:
        header, rows, more = alarm_rows(run)
        parts.append(_html_table(header, rows, css="alarm"))
        if more:
            parts.append(f"<p>{_h(more)}</p>")
    parts.append("<h2>Figures</h2>")
    if note:
        parts.append(f"<p>{e(note)}</p>")
    for fig in figures:
        data = base64.b64encode((out_dir / fig.name).read_bytes()).decode("ascii")
        parts.append(
            f'<figure id="{e(fig.name)}"><img src="data:image/png;base64,{data}" alt="{e(fig.title)} ({e(fig.name)})">'
            f'<figcaption><b>{e(fig.title)}</b> (<a href="{e(fig.name)}">{e(fig.name)}</a>): '
            f"{e(fig.caption)}</figcaption></figure>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _h(value: Any) -> str:
    """``value`` as HTML text: escaped, control characters written as ``\\x1b``."""
    return html.escape(terminal_safe(str(value), keep_newlines=True))


def _html_pairs(pairs: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in pairs) + "</table>"


def _html_table(header: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in header)

    def cell(text: str) -> str:
        cls = "n" if _numeric(text) else css
        return f'<td class="{cls}">{_h(text)}</td>' if cls else f"<td>{_h(text)}</td>"

    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- Markdown --------------------------------------------------------------------------------------


def render_markdown(run: RunRecord, figures: list[FigureFile], note: str = "") -> str:
    """The page as Markdown; figures are referenced by their file names beside it."""
    lines = [
        f"# Run {md_text(run.name)}",
        "",
        "## Settings",
        "",
        *_md_pairs(key_settings(run)),
        "",
        "## Training",
        "",
        *_md_pairs(training_summary(run)),
        "",
        "## Evaluation",
        "",
    ]
    if run.metrics:
        header, rows = metrics_table(run.metrics)
        lines += _md_table(header, rows)
    else:
        lines.append("No metrics.json: the run has not been evaluated yet.")
    lines += ["", "## Collapse alarms", ""]
    alarms = run.alarms()
    if "collapse_alarm" not in run.history:
        lines.append("This run's history has no `collapse_alarm` column.")
    elif alarms.empty:
        lines.append("None: no logged step was flagged.")
    else:
        header, rows, more = alarm_rows(run)
        lines += _md_table(header, rows)
        if more:
            lines += ["", more]
    lines += ["", "## Figures", ""]
    if note:
        lines += [note, ""]
    for fig in figures:
        lines += [f"![{fig.title}]({fig.name})", "", f"*{fig.title}*: {fig.caption}", ""]
    return "\n".join(lines).rstrip() + "\n"


def _md_pairs(pairs: list[tuple[str, str]]) -> list[str]:
    return _md_table(["what", "value"], [[k, v] for k, v in pairs])


# What would make a Markdown renderer do more than show text: raw HTML ("<tag", "</", "<!",
# "<?", autolinks "<http:"), entities ("&amp;"), links and images ("](", "]["), code spans and
# escapes ("`", "\\"), and "|", which ends a table cell.
_MD_ACTIVE = re.compile(r"\\|`|\||<(?=[A-Za-z/!?])|&(?=#?\w+;)|\](?=[(\[:])")
_MD_REPLACE = {"<": "&lt;", "&": "&amp;"}


def md_text(value: Any) -> str:
    """``value`` as Markdown that shows as the same text: HTML, links, code spans and table
    pipes are escaped, control characters written as ``\\x1b``, all on one line (a config value
    or a history cell from a run directory is data, not markup)."""
    text = terminal_safe(str(value).replace("\n", " "))
    return _MD_ACTIVE.sub(lambda m: _MD_REPLACE.get(m.group(), "\\" + m.group()), text)


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def cells(row: list[str]) -> str:
        return "| " + " | ".join(md_text(c) for c in row) + " |"

    return [cells(header), "|" + "|".join("---" for _ in header) + "|", *(cells(r) for r in rows)]
