"""``multivic compare``: one table of several runs, the settings that differ and the final metrics.

One row per run (indexed by the run directory's name), one column per flattened config key
whose value is not the same in every run (``loss.std_coeff``, ``model.branch_a.encoder``, ...),
then every metric of the runs' metrics.json (the union; a run without one is left empty).

config.yaml and metrics.json are read as data (``yaml.safe_load``, ``json``): nothing a run
directory names is imported, so comparing runs from elsewhere is safe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from multivic.config import flatten
from multivic.errors import MultivicError, RunDirError
from multivic.report.metrics import metric_sort_key
from multivic.run_dir import RunDir, atomic_replace
from multivic.trust import terminal_safe

_MISSING = object()  # a key one run lacks: differs from every value, None included


def read_run(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flattened config and the flattened final metrics of the run directory ``path``."""
    run = RunDir(path)
    config, metrics = run.read_config_data(), run.read_metrics()
    return flatten(config), flatten(metrics)


def _row_names(paths: list[Path]) -> list[str]:
    """The run directories' names, or the paths as given where two names are the same."""
    names = [p.name or p.resolve().name for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def compare_runs(paths: list[str | Path]) -> pd.DataFrame:
    """The comparison table of at least two run directories (see the module's docstring)."""
    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise MultivicError(f"compare needs at least two run directories, got {len(paths)}")
    resolved = [p.resolve() for p in paths]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise RunDirError(f"{paths[i]} is given twice: pass each run directory once")
    runs = [read_run(p) for p in paths]
    configs, metrics = [c for c, _ in runs], [m for _, m in runs]

    keys: list[str] = []
    for config in configs:
        keys += [k for k in config if k not in keys]
    differing = [k for k in keys if len({_key_of(c.get(k, _MISSING)) for c in configs}) > 1]
    metric_keys = sorted({k for m in metrics for k in m}, key=metric_sort_key)

    rows = []
    for config, metric in zip(configs, metrics):
        row = {k: config.get(k) for k in differing}
        row.update({k: metric.get(k) for k in metric_keys if k not in row})
        rows.append(row)
    columns = differing + [k for k in metric_keys if k not in differing]
    table = pd.DataFrame(rows, index=pd.Index(_row_names(paths), name="run"), columns=columns)
    table.attrs["config_columns"] = differing
    return table


def _key_of(value: Any) -> Any:
    """A hashable identity of a config value that tells 1 from 1.0 from True from "1"."""
    return value if value is _MISSING else (type(value).__name__, repr(value))


def _cell(value: Any, metric: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if metric:
            return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.4g}"
        return f"{value:.6g}"
    return _text(value)


def _text(value: Any) -> str:
    """A cell as text for a terminal and a Markdown table: control characters escaped (a
    config.yaml from elsewhere may hold terminal escape sequences), "|" escaped, one line."""
    return terminal_safe(str(value).replace("\n", " ")).replace("|", "\\|")


def to_markdown(table: pd.DataFrame) -> str:
    """The table as a GitHub Markdown table: numbers right-aligned, metrics rounded to 2 decimals
    (4 significant digits under 1), config values as written; empty where a run has no value."""
    config_columns = set(table.attrs.get("config_columns", []))
    header = [_text(table.index.name or "run"), *map(_text, table.columns)]
    body = []
    for name, row in table.iterrows():
        body.append([_text(name)] + [_cell(row[c], c not in config_columns) for c in table.columns])
    numeric = [False] + [
        pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c]) for c in table.columns
    ]
    widths = [max(3, len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in body)])


# A cell a spreadsheet would run as a formula (OWASP's CSV injection list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """``value``, with a text cell that starts like a formula (``=HYPERLINK(...)`` from a run's
    config.yaml) prefixed by ``'`` so that a spreadsheet shows it as text; numbers unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(table: pd.DataFrame, path: Path) -> None:
    """The table as CSV (full precision, first column ``run``), replaced atomically; text cells
    from run directories never start like a spreadsheet formula."""
    safe = table.map(spreadsheet_safe)
    safe.index = [spreadsheet_safe(i) for i in table.index]
    safe.columns = [spreadsheet_safe(c) for c in table.columns]
    with atomic_replace(path) as tmp:
        safe.to_csv(tmp, index_label=table.index.name)
