"""Reading a file written by someone else as data: one path for every such read.

A run directory, an export, a data set's index or table and a shard index are data, as often
written by someone else as by the user. Every read goes through :func:`read_file_bytes` (and the
text, JSON and YAML readers on top of it): the file must be a regular file (a FIFO, a device or
a socket is refused without being read, so nothing hangs), no larger than a bound, and any
damage is one error naming the file and the fix, never a traceback. Paths such a file names are
resolved with :func:`inside_folder`, which refuses any that lands outside its folder.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from multivic.errors import DataError, MultivicError, RunDirError

MAX_SMALL_FILE = 16 << 20  # config.yaml, metrics.json, trainer.json, export json, examples.json
MAX_CONFIG_NODES = 100_000  # values in a config (YAML aliases can make a small file a huge tree)
# A data set's index or table (labels.csv, captions_*.json, shards.json), or one file multivic
# shard copies: room for COCO's captions (~90 MB for train2014) and more; larger is refused.
MAX_INDEX_BYTES = 1 << 30


def leads_outside(path: Path, folder: Path) -> bool:
    """Whether ``path``, symbolic links followed, resolves outside ``folder``."""
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) != root


def link_leading_outside(folder: Path) -> Path | None:
    """The first entry under ``folder`` (recursively, links not followed) that is a symbolic link
    resolving outside it, or None: a saved state folder from elsewhere (a tokenizer's files) is
    read from its own folder only."""
    for parent, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = Path(parent) / name
            if os.path.islink(path) and leads_outside(path, folder):
                return path
    return None


def inside_folder(folder: Path, name: str | Path, what: str, error: type[MultivicError] = DataError) -> Path:
    """``folder / name``, refused with one ``error`` naming ``what`` (the row or entry that names
    it) when ``name`` is empty, absolute, or resolves, symbolic links followed, outside ``folder``."""
    if not isinstance(name, (str, Path)) or not str(name).strip():
        raise error(f"{what} names no file ({name!r}): give a path relative to {folder}")
    if Path(name).is_absolute():
        raise error(
            f"{what} names the absolute path {name}: files are named relative to {folder}; "
            "move the file there and name it relative to it"
        )
    path = Path(folder) / name
    if leads_outside(path, folder):
        raise error(
            f"{what} resolves to {os.path.realpath(path)}, outside {os.path.realpath(folder)}: "
            "the files must live under that folder (copy the file there instead of linking or naming ../)"
        )
    return path


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def is_present(path: Path, fix: str, error: type[MultivicError] = RunDirError) -> bool:
    """Whether ``path`` exists; False when it does not, True when it is a regular file (through
    symbolic links), and ``error`` when it is something else (a folder, a FIFO, a device), which a
    reader must never open."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.lexists(path):  # a symbolic link to nothing
            raise error(f"{path} is a symbolic link to a missing file: {fix}") from None
        return False
    except OSError as exc:
        raise error(f"{path} cannot be read ({exc.strerror or exc}): {fix}") from None
    if not stat.S_ISREG(mode):
        raise error(f"{path} is {file_kind(mode)}, not a regular file: {fix}")
    return True


def check_regular_file(path: Path, fix: str, error: type[MultivicError] = RunDirError) -> None:
    """``error`` unless ``path`` is an existing regular file (checked before a library opens it:
    safetensors, torch.load and Pillow would block on a FIFO)."""
    if not is_present(path, fix, error):
        raise error(f"{path} is missing: {fix}")


def read_file_bytes(
    path: Path,
    fix: str,
    limit: int = MAX_SMALL_FILE,
    error: type[MultivicError] = RunDirError,
    follow_symlinks: bool = True,
    inside: Path | None = None,
) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them.

    Refused with one ``error`` naming the file, ending with ``fix``: a missing file, anything
    but a regular file (opened without blocking, then checked, so a FIFO is never read), a file
    over ``limit`` bytes, a symbolic link when ``follow_symlinks`` is False, a path that
    resolves outside the folder ``inside`` when it is given.
    """
    path = Path(path)
    if inside is not None and leads_outside(path, inside):
        raise error(f"{path} leads outside {inside}: {fix}")
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow_symlinks:
        if os.path.islink(path):
            raise error(f"{path} is a symbolic link, not a file multivic wrote: {fix}")
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{path} is missing: {fix}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{path} is a symbolic link, not a file multivic wrote: {fix}") from None
        raise error(f"{path} cannot be opened ({exc.strerror or exc}): {fix}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is {file_kind(info.st_mode)}, not a regular file: {fix}")
        if info.st_size > limit:
            raise error(f"{path} is too large ({info.st_size} bytes; at most {limit} expected): {fix}")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:  # grew while read
                raise error(f"{path} is too large (over {limit} bytes): {fix}")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{path} cannot be read ({exc.strerror or exc}): {fix}") from None
    finally:
        os.close(fd)


def read_text_file(
    path: Path,
    fix: str,
    limit: int = MAX_SMALL_FILE,
    error: type[MultivicError] = RunDirError,
    follow_symlinks: bool = True,
    inside: Path | None = None,
) -> str:
    """:func:`read_file_bytes` decoded as UTF-8; ``error`` "<file> is damaged (not UTF-8 text)"."""
    data = read_file_bytes(path, fix, limit, error, follow_symlinks, inside)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{path} is damaged (not UTF-8 text): {fix}") from None


def read_json_file(
    path: Path,
    fix: str,
    limit: int = MAX_SMALL_FILE,
    error: type[MultivicError] = RunDirError,
    expect: type | None = dict,
    inside: Path | None = None,
) -> Any:
    """:func:`read_text_file` parsed as JSON, of type ``expect`` (None: any); every failure is
    ``error`` "<file> is damaged (<what>): <fix>"."""
    text = read_text_file(path, fix, limit, error, inside=inside)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, an integer too long to convert
        raise error(f"{path} is damaged (not valid JSON: {first_line(exc)}): {fix}") from None
    if expect is not None and not isinstance(value, expect):
        raise error(f"{path} is damaged (a JSON {type(value).__name__}, not a {json_name(expect)}): {fix}")
    return value


def read_yaml_file(
    path: Path,
    fix: str,
    limit: int = MAX_SMALL_FILE,
    error: type[MultivicError] = RunDirError,
    inside: Path | None = None,
) -> Any:
    """:func:`read_text_file` parsed with ``yaml.safe_load`` (plain data: nothing is imported),
    at most :data:`MAX_CONFIG_NODES` values once aliases are followed."""
    text = read_text_file(path, fix, limit, error, inside=inside)
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise error(f"{path} is damaged (not readable YAML: {exc.__class__.__name__}): {fix}") from None
    if _count_nodes(value, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
        raise error(f"{path} is damaged (over {MAX_CONFIG_NODES} values once its aliases are expanded): {fix}")
    return value


def _count_nodes(value: Any, budget: int) -> int:
    """Values in ``value`` (aliases counted each time they are used), stopping past ``budget``."""
    count, stack = 0, [value]
    while stack and count <= budget:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return count


def first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else exc.__class__.__name__)[:200]


def json_name(kind: type) -> str:
    return {dict: "JSON object", list: "JSON list"}.get(kind, kind.__name__)
