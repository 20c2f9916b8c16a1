"""Where built-in data sets are written, and writing them exactly once, atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

COMPLETE_MARKER = ".complete"


def builtin_root(name: str) -> Path:
    """Folder of the built-in data set ``name``: $MULTIVIC_DATA_DIR/<name>, by default under ~/.cache/multivic/data."""
    base = os.environ.get("MULTIVIC_DATA_DIR") or Path.home() / ".cache" / "multivic" / "data"
    return Path(base) / name


def ensure_written(root: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp_dir)`` and move the result to ``root`` unless ``root`` is already complete.

    The data set is built in a temporary sibling folder and renamed into place, so a killed
    run never leaves a half-written data set that a later run would trust.
    """
    if (root / COMPLETE_MARKER).exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        write(tmp)
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if root.exists():  # an incomplete leftover from a killed run
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if (root / COMPLETE_MARKER).exists():  # another process won the race
            return root
        raise
    return root
