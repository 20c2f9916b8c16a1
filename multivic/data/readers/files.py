"""Reading a data set's own files as data: inside its root, regular files only, size-bounded.

A data set (its CSV rows, its caption file's ``file_name`` entries, its symlinks) and a shard
index are often written by someone else. What they name is resolved under the data set's root,
symlinks followed, and refused when it lands outside; index and table files are read only when
they are regular files (a FIFO would block the reader forever) of a sane size.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from multivic.errors import DataError

# Index and table files (labels.csv, captions_*.json, shards.json): big enough for COCO's
# captions (~90 MB for train2014) with room to spare; a tampered file is refused, not read.
MAX_INDEX_BYTES = 1 << 30


def inside_root(root: Path, name: str | Path, what: str) -> Path:
    """``root / name``, refused with a DataError naming ``what`` (the row or entry) when ``name``
    is absolute or the path resolves, symlinks followed, outside ``root``."""
    if not isinstance(name, (str, Path)) or not str(name).strip():
        raise DataError(f"{what} names no file ({name!r}): give a path relative to the data set's root")
    if Path(name).is_absolute():
        raise DataError(
            f"{what} names the absolute path {name}: data-set files are named relative to data.root "
            f"({root}); move the file there and name it relative to it"
        )
    path = Path(root) / name
    real_root = Path(root).resolve()
    resolved = path.resolve()
    if resolved != real_root and real_root not in resolved.parents:
        raise DataError(
            f"{what} resolves to {resolved}, outside the data set's root {real_root}: "
            "data-set files must live under data.root (copy the file there instead of linking or naming ../)"
        )
    return path


def read_index_bytes(path: Path, what: str, max_bytes: int = MAX_INDEX_BYTES) -> bytes:
    """The bytes of a data set's index or table file; a DataError naming ``what`` when it is
    missing, not a regular file, or larger than ``max_bytes``."""
    try:
        info = os.stat(path)
    except OSError:
        raise DataError(f"{what} {path} not found") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{what} {path} is not a regular file (a FIFO, device or folder): replace it with the file")
    if info.st_size > max_bytes:
        raise DataError(f"{what} {path} is {info.st_size} bytes, over the {max_bytes}-byte limit of such a file")
    try:
        with open(path, "rb") as f:
            return f.read(max_bytes + 1)
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
