"""What a report shows of one run directory, read as data: config, history and final metrics.

config.yaml is read with ``yaml.safe_load``: nothing the run names is imported, so a report of
a run from elsewhere is safe to make.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multivic.errors import RunDirError
from multivic.evaluation.examples import read_examples
from multivic.run_dir import RunDir

SIDES = ("a", "b")
TEXT_COLUMNS = ("collapse_alarm",)


@dataclass
class RunRecord:
    """One run directory's contents, as the report's figures and page use them."""

    root: Path
    config: dict[str, Any]
    history: pd.DataFrame  # numeric columns as floats (inf as NaN), collapse_alarm as text ("" when none)
    metrics: dict[str, float] = field(default_factory=dict)
    # eval_arrays.safetensors: "<branch>/embedding_singular_values", ..._std ([K] float64 arrays)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    # eval_examples/examples.json's directions (retrieval runs), thumbnails in examples_dir
    examples: list[dict[str, Any]] | None = None

    @property
    def examples_dir(self) -> Path:
        return RunDir(self.root).eval_examples

    def evaluated_branches(self) -> list[str]:
        """The branch names of eval_arrays, in the order their arrays were written."""
        return list(dict.fromkeys(key.rpartition("/")[0] for key in self.arrays))

    @property
    def name(self) -> str:
        return self.root.resolve().name

    def setting(self, dotted: str, default: Any = None) -> Any:
        """``config[a][b]...`` for ``"a.b..."``; ``default`` where a level is missing or null."""
        return setting_of(self.config, dotted, default)

    @property
    def gamma(self) -> float:
        """The variance term's target std γ (``loss.gamma``, 1.0 by default)."""
        return float(self.setting("loss.gamma", 1.0))

    def side_label(self, side: str) -> str:
        """``"a (resnet18)"``: the side and its branch's name."""
        branch = self.setting(f"model.branch_{side}.name") or self.setting(f"model.branch_{side}.encoder")
        return f"{side} ({branch})" if branch else side

    def has(self, column: str) -> bool:
        """Whether history.csv has ``column`` with at least one finite value."""
        return column in self.history and bool(np.isfinite(self.history[column].to_numpy(dtype=float)).any())

    def alarms(self) -> pd.DataFrame:
        """The history rows whose ``collapse_alarm`` is not empty: step, epoch, alarm."""
        if "collapse_alarm" not in self.history:
            return pd.DataFrame(columns=["step", "epoch", "collapse_alarm"])
        rows = self.history[self.history["collapse_alarm"].str.strip() != ""]
        return rows[["step", "epoch", "collapse_alarm"]]


def setting_of(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    """``config[a][b]...`` for ``"a.b..."``; ``default`` where a level is missing or null."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or node.get(part) is None:
            return default
        node = node[part]
    return node


def read_run(path: str | Path) -> RunRecord:
    """The :class:`RunRecord` of the run directory ``path``; a one-line RunDirError when it is not
    one or has no logged step yet."""
    run = RunDir(path)
    config = run.read_config_data()
    text = run.read_history_text()  # a regular file of sane size, UTF-8; "" when there is none
    if not text and not run.history.is_file():
        raise RunDirError(f"{path} has no history.csv yet: the run has not logged a step (train it first)")
    history = _read_history(run.history, text)
    _check_settings(config, run.config)
    metrics = run.read_metrics()
    arrays = _checked_arrays(run.read_eval_arrays(), run.eval_arrays)
    return RunRecord(Path(path), config, history, metrics, arrays, read_examples(run.eval_examples))


# The settings the figures compute with (a target line, an alarm floor): finite numbers or absent.
NUMERIC_SETTINGS = ("loss.gamma", "train.alarm_min_std")
MAX_ARRAYS = 64  # eval_arrays.safetensors: four 1-D arrays per evaluated branch
MAX_ARRAY_LENGTH = 1 << 20  # one value per dimension of a representation or embedding


def _check_settings(config: dict[str, Any], path: Path) -> None:
    """A RunDirError naming ``path`` when a setting the figures compute with is not a finite
    number (config.yaml is data from elsewhere: ``gamma: abc`` must not be a traceback)."""
    for key in NUMERIC_SETTINGS:
        value = setting_of(config, key)
        if value is not None and not _finite_number(value):
            raise RunDirError(
                f"{path} is damaged or was altered ({key} is {str(value)[:40]!r}, not a finite number): "
                "restore it from the recipe the run was trained with"
            )


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int of hundreds of digits
        return False


def _checked_arrays(arrays: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    """eval_arrays.safetensors' tensors as float64 arrays, each a "<branch>/<name>" of one
    dimension; a RunDirError naming ``path`` for anything else (a 0-d, 2-d or empty tensor, too
    many of them): what evaluation writes, nothing a figure cannot draw."""
    fix = "delete it and re-evaluate the run with `multivic eval`"
    if len(arrays) > MAX_ARRAYS:
        raise RunDirError(f"{path} is damaged or was altered ({len(arrays)} arrays): {fix}")
    out = {}
    for key, tensor in arrays.items():
        if "/" not in key or tensor.dim() != 1 or not 0 < tensor.numel() <= MAX_ARRAY_LENGTH or tensor.is_complex():
            raise RunDirError(
                f"{path} is damaged or was altered ({str(key)[:60]!r} has shape {list(tensor.shape)}, not one "
                f"dimension of 1 to {MAX_ARRAY_LENGTH} values): {fix}"
            )
        out[key] = tensor.double().numpy()
    return out


def _read_history(path: Path, text: str) -> pd.DataFrame:
    """history.csv's ``text`` as a table; any damage is a one-line RunDirError naming ``path``."""
    try:
        history = pd.read_csv(
            io.StringIO(text), dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False, na_values=[""]
        )
    except pd.errors.EmptyDataError:
        raise RunDirError(
            f"{path} is not a readable history (EmptyDataError): is the run still writing its first row?"
        ) from None
    except Exception as exc:  # noqa: BLE001 - ParserError, ValueError, MemoryError...: the file is damaged
        raise RunDirError(
            f"{path} is damaged ({exc.__class__.__name__}): restore it, or delete it and train again "
            "(the report needs the logged steps)"
        ) from None
    if history.empty or "step" not in history:
        raise RunDirError(f"{path} has no logged step yet: wait for the first train.log_every steps")
    for column in history.columns:
        if column in TEXT_COLUMNS:
            history[column] = history[column].fillna("").astype(str)
        else:
            values = pd.to_numeric(history[column], errors="coerce").astype(float)
            history[column] = values.replace([np.inf, -np.inf], np.nan)
    history = history[history["step"].notna()]  # a row whose step is not a number is damaged: left out
    if history.empty:
        raise RunDirError(f"{path} has no row with a step number: restore it, or train again")
    return history.sort_values("step", kind="stable").reset_index(drop=True)
