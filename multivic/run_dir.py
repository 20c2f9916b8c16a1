"""The run directory: everything a run writes, in one self-describing folder.

    RUN_DIR/
      config.yaml              the resolved recipe
      history.csv              one row per logged step: step, epoch, lr, loss and its terms, ...
      checkpoints/LATEST       name of the newest complete checkpoint folder
      checkpoints/epoch_NNNN/  model, optimisers, schedules, RNGs and counters (see multivic.train.checkpoint;
      checkpoints/step_N/      step_N every train.checkpoint_every_steps)
      export/<branch>.safetensors, export/<branch>.json   trained branches and their configs
      modalities/<modality>/   a fitted modality state (the text tokenizer), as data files
      metrics.json             flat final evaluation numbers

Files other code reads are replaced atomically (write a temporary file, then rename), so a
killed run leaves either the old or the new version, never half of one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import yaml

from multivic.errors import RunDirError


@contextlib.contextmanager
def atomic_replace(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds it is renamed onto
    ``path``, when it fails it is removed. Readers see the old file or the new one, never half.
    The temporary name keeps ``path``'s suffix, for writers that choose a format by it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the final file gets the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    with atomic_replace(path) as tmp, tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


class RunDir:
    """Paths and small readers/writers of one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def modalities(self) -> Path:
        """Fitted modality states (e.g. ``modalities/text/``: the tokenizer of the captions)."""
        return self.root / "modalities"

    def modality_state(self, name: str) -> Path:
        """The folder of modality ``name``'s fitted state: ``modalities/<name>/``, or
        ``<name>/`` at the root where a multivic 0.1 run kept it (its ``text/``)."""
        current, legacy = self.modalities / name, self.root / name
        return legacy if legacy.is_dir() and not current.is_dir() else current

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_text(self.metrics, json.dumps(metrics, indent=2, sort_keys=True) + "\n")

    @property
    def eval_arrays(self) -> Path:
        """Each branch's spectra and per-dimension std on the evaluation split (safetensors)."""
        return self.root / "eval_arrays.safetensors"

    @property
    def eval_examples(self) -> Path:
        """A few retrieval queries with their top items and thumbnails (retrieval runs)."""
        return self.root / "eval_examples"

    def write_eval_arrays(self, arrays: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        with atomic_replace(self.eval_arrays) as tmp:
            save_file({k: v.detach().cpu().contiguous() for k, v in arrays.items()}, str(tmp))
            os.chmod(tmp, 0o666 & ~_umask())  # safetensors creates the file anew, private

    def read_eval_arrays(self) -> dict[str, Any]:
        """eval_arrays.safetensors as tensors ({} when the run has none: evaluated before
        multivic 0.3, or not yet); a one-line RunDirError when damaged. Data only, no pickle."""
        if not self.eval_arrays.is_file():
            return {}
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(self.eval_arrays))
        except (SafetensorError, OSError, ValueError) as exc:
            raise RunDirError(f"{self.eval_arrays} is damaged ({exc}): re-evaluate the run with `multivic eval {self.root}`") from None

    def read_config_data(self) -> dict[str, Any]:
        """config.yaml as plain data (yaml.safe_load: nothing is imported or resolved); a
        one-line RunDirError when this is not a run directory or the file is not a mapping."""
        if not self.config.is_file():
            raise RunDirError(f"{self.root} is not a multivic run directory (no config.yaml): pass the --output-dir of a training run")
        try:
            config = yaml.safe_load(self.config.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{self.config} is not readable YAML ({exc.__class__.__name__}): is it a multivic config?") from None
        if not isinstance(config, dict):
            raise RunDirError(f"{self.config} does not hold a mapping of settings: is it a multivic config?")
        return config

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json ({} before the first evaluation); a one-line RunDirError when damaged."""
        if not self.metrics.is_file():
            return {}
        try:
            metrics = json.loads(self.metrics.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{self.metrics} is not valid JSON ({exc.__class__.__name__}): "
                              f"re-evaluate the run with `multivic eval {self.root}`") from None
        if not isinstance(metrics, dict):
            raise RunDirError(f"{self.metrics} does not hold a mapping of metric names to numbers")
        return metrics


class HistoryWriter:
    """Appends rows to history.csv; on resume, drops rows logged after the checkpoint's step."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        self.columns: list[str] | None = None
        if path.is_file():
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                columns = list(reader.fieldnames or [])
                rows = [r for r in reader if r.get("step") not in (None, "") and int(r["step"]) <= resume_step]
            if "step" not in columns:  # empty or headerless (a kill while it was first written): start afresh
                path.unlink()
                return
            self.columns = columns
            # Rewritten atomically: a kill here leaves the old file, never an empty one.
            with atomic_replace(path) as tmp, tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.columns)
                writer.writeheader()
                writer.writerows(rows)

    def append(self, row: dict[str, Any]) -> None:
        new = self.columns is None
        if new:
            self.columns = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
