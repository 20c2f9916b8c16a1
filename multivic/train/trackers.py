"""Experiment trackers (TensorBoard, Weights & Biases, MLflow, Aim, ...) through Accelerate.

Off by default: ``train.trackers: [tensorboard]`` (any of Accelerate's tracker names) sends
every history row's numbers to those trackers as well, at the row's optimiser step, and the
final evaluation metrics at the last step. history.csv is written either way. Nothing reaches
the network unless the user names a tracker that sends there (wandb, comet_ml, ... with their
own settings and credentials): TensorBoard, MLflow's default file store, Aim and DVCLive write
into ``RUN_DIR/trackers/``.

Only the main process logs (Accelerate's trackers are main-process only).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from accelerate import Accelerator
from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

from multivic.errors import ConfigError
from multivic.run_dir import RunDir

KNOWN_TRACKERS: tuple[str, ...] = tuple(sorted(LOGGER_TYPE_TO_CLASS))


def check_trackers(names: Sequence[str]) -> tuple[str, ...]:
    """The tracker names of ``train.trackers``, validated: known to Accelerate, installed, no
    repeats. Raises a one-line ConfigError naming the fix, before anything is written."""
    names = tuple(str(n) for n in names)
    available = {str(t) for t in get_available_trackers()}
    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise ConfigError(
                f"train.trackers names {name!r}, which is not a tracker Accelerate knows; known: "
                f"{', '.join(KNOWN_TRACKERS)}"
            )
        if name not in available:
            raise ConfigError(
                f"train.trackers names {name!r}, whose package is not installed: `uv pip install {name}` "
                f"(or `pip install {name}`), or remove it from train.trackers"
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"train.trackers names a tracker twice: {list(names)}")
    return names


def tracker_dir(run_dir: RunDir) -> str:
    """Where the trackers that write files (TensorBoard, Aim, DVCLive, ...) write them."""
    return str(run_dir.root / "trackers")


def start_trackers(accelerator: Accelerator, run_dir: RunDir, hparams: Mapping[str, Any]) -> None:
    """Start the trackers the accelerator was made with (``log_with``), named after the run
    directory, with ``hparams`` (flat: dotted keys, scalar values) as the run's configuration."""
    if not accelerator.log_with:
        return
    values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in hparams.items()}
    accelerator.init_trackers(run_dir.root.resolve().name, config=values)


def log_row(accelerator: Accelerator, row: Mapping[str, Any], step: int) -> None:
    """Send the finite numbers of ``row`` (a history row, or final metrics) at ``step``; text
    (the collapse alarm) and NaN stay in history.csv only."""
    if not accelerator.log_with:
        return
    numbers = {
        k: float(v)
        for k, v in row.items()
        if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
    if numbers:
        accelerator.log(numbers, step=step)


def finish_trackers(accelerator: Accelerator) -> None:
    """Flush and close the trackers. Not ``accelerator.end_training()``: that also destroys the
    process group, which the export and evaluation after training still synchronise on."""
    for tracker in accelerator.trackers:
        tracker.finish()
    accelerator.trackers = []
