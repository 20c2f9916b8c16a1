"""The run directory: everything a run writes, in one self-describing folder.

    RUN_DIR/
      config.yaml              the resolved recipe
      history.csv              one row per logged step: step, epoch, lr, loss and its terms, ...
      checkpoints/LATEST       name of the newest complete checkpoint folder
      checkpoints/epoch_NNNN/  model, optimisers, schedules, RNGs and counters (see multivic.train.checkpoint;
      checkpoints/step_N/      step_N every train.checkpoint_every_steps)
      export/<branch>.safetensors, export/<branch>.json   trained branches and their configs
      modalities/<modality>/   a fitted modality state (the text tokenizer), as data files
      metrics.json             flat final evaluation numbers (standard JSON: a NaN metric is null)
      .lock                    while a process writes the run: who (see RunDir.lock)

Files other code reads are replaced atomically (write a temporary file, then rename), so a
killed run leaves either the old or the new version, never half of one. Files are read back as
data from elsewhere (read_file_bytes and the readers on it): regular files only, bounded in
size, any damage one RunDirError naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import logging
import math
import os
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from multivic.errors import MultivicError, RunDirError
from multivic.files import (
    file_kind,
    first_line,
    is_present,
    leads_outside,
    read_file_bytes,
    read_json_file,
    read_text_file,
    read_yaml_file,
)
from multivic.trust import terminal_safe

logger = logging.getLogger("multivic")

# Bounds on what a run directory's files may hold: a tampered file is refused, never read whole.
MAX_HISTORY_FILE = 1 << 30  # history.csv: a row per logged step
MAX_POINTER_FILE = 256  # checkpoints/LATEST: one folder name
LOCK_FILE = ".lock"
# What multivic writes, replaces or deletes at the top of a run directory (see RunDir.check_links).
WRITTEN_ENTRIES = (
    "config.yaml",
    "history.csv",
    "metrics.json",
    "eval_arrays.safetensors",
    "checkpoints",
    "export",
    "modalities",
    "report",
    "eval_examples",
    "eval_examples.tmp",
    "eval_examples.old",
)
LINK_FIX = (
    "a run directory's files live inside it; replace the link by a copy of what it points to, or, to keep a run "
    "on another disk, put the whole run directory there (--output-dir)"
)


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


def remove_path(path: Path) -> None:
    """Remove ``path`` whatever it is: a folder with its contents, a file, or a symbolic link
    (the link only, never what it points to). A leftover ``.tmp`` that a run directory from
    elsewhere made a link must not make the next write fail, nor delete the link's target."""
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isdir(path)):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


# --------------------------------------------------------------------------------------------
# Reading files written by someone else: one path for every run-directory (and index) file.
#
def finite_json(value: Any, where: str = "") -> tuple[Any, list[str]]:
    """``value`` with every NaN or infinite float replaced by None, and the keys (dotted) where
    that happened: what standard JSON can hold (json.dumps(allow_nan=False) accepts it)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None, [where or "value"]
    if isinstance(value, dict):
        out, bad = {}, []
        for k, v in value.items():
            out[k], b = finite_json(v, f"{where}.{k}" if where else str(k))
            bad += b
        return out, bad
    if isinstance(value, (list, tuple)):
        items = [finite_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return [v for v, _ in items], [k for _, b in items for k in b]
    return value, []


def metrics_json(metrics: dict[str, Any]) -> str:
    """Metrics as standard JSON text: a NaN or infinite value is written as ``null`` (with a
    warning naming it), never as the bare token ``NaN`` that other JSON readers refuse."""
    clean, bad = finite_json(metrics)
    if bad:
        logger.warning("metrics not finite (NaN or infinite), recorded as null: %s", ", ".join(bad[:10]))
    return json.dumps(clean, indent=2, sort_keys=True, allow_nan=False) + "\n"


# --------------------------------------------------------------------------------------------
# One writer per run directory


def launch_rank() -> int:
    """This process's global rank in a multi-process launch (the variables Accelerate reads), 0
    when it runs alone."""
    for name in ("RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMI_RANK"):
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


_HELD: set[str] = set()  # run directories this process holds (a POSIX lock is per process)


def _say_if_the_last_holder_died(root: Path, previous: bytes) -> None:
    """A lock file that still names a holder was left by a process that never reached its end:
    the system killed it (out of memory, a scheduler's SIGKILL) or the machine stopped. Said
    once, at the next start, since that process could say nothing."""
    if not previous.strip():
        return
    logger.warning(
        "%s: %s ended without a word: the system killed it (out of memory? a scheduler's SIGKILL?) or the machine "
        "stopped; its last checkpoint is kept",
        root,
        _describe_holder(previous) or "the previous command",
    )


def _describe_holder(data: bytes) -> str | None:
    """A lock file's holder as "`multivic train`, pid 123 on host h, since ...", its text made
    safe for a terminal and bounded; None when the file does not say."""
    try:
        info = json.loads(data)
        pid, host = int(info["pid"]), terminal_safe(str(info.get("host", "?")))[:64]
        command = terminal_safe(str(info.get("command", "?")))[:40]
        since = terminal_safe(str(info.get("since", "?")))[:32]
    except (ValueError, KeyError, TypeError):
        return None
    return f"`{command}`, pid {pid} on {host}, since {since}"


def _holder(path: Path) -> str:
    """Who holds the lock, as its file says (see :func:`_describe_holder`)."""
    try:
        data = read_file_bytes(path, "", limit=4096)
    except MultivicError:
        data = b""
    return _describe_holder(data) or "a process that has not yet said who it is"


def _make_dirs(root: Path) -> list[Path]:
    """Create ``root`` and its missing parents; the folders created, outermost first."""
    missing = []
    folder = root
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    root.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


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
        """metrics.json, standard JSON: a NaN or infinite metric is written as null, with a
        warning (see :func:`metrics_json`)."""
        atomic_write_text(self.metrics, metrics_json(metrics))

    @contextlib.contextmanager
    def lock(self, command: str = "multivic") -> Iterator[None]:
        """Hold the run directory for the block: one writer at a time.

        An exclusive POSIX lock on ``RUN_DIR/.lock``, which names the holder (pid, host, command,
        start). A second process is refused at once with a RunDirError naming the holder,
        having written nothing. The kernel drops the lock when its process dies, however it
        dies (SIGKILL included), so the next command takes over a dead run's directory without
        a stale lock to clear; data-loading workers forked by the holder do not hold it.

        Creates ``root`` (and missing parents) when needed; when the block fails and leaves it
        empty, removes them again, so a refused command leaves no trace. In a multi-process
        launch only the main process (global rank 0) locks: the others are its own.
        ``.lock`` is removed when the block ends.
        """
        if launch_rank() != 0:
            yield
            return
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            yield
            return
        key = os.path.realpath(self.root)
        if key in _HELD:
            raise RunDirError(f"{self.root} is already being written by this process: one writer at a time")
        path = self.root / LOCK_FILE
        fix = (
            "wait for it to finish (or stop it), then run this command again; "
            "one run directory has one writer at a time"
        )
        try:
            created = _make_dirs(self.root)
        except OSError as exc:
            raise RunDirError(f"{self.root} cannot be created ({exc.strerror or exc}): choose another folder") from None
        fd = -1
        ok = False
        try:
            fd = self._acquire(path, fcntl, fix)
            _HELD.add(key)
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command,
                "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            }
            if fd >= 0:
                _say_if_the_last_holder_died(self.root, os.pread(fd, 4096, 0))
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
            self.check_links()
            yield
            ok = True
        finally:
            if fd >= 0:
                _HELD.discard(key)
                try:  # removed while still held: a process waiting on this file retries on the new one
                    if os.path.samestat(os.fstat(fd), os.stat(path)):
                        os.unlink(path)
                except OSError:
                    pass
                os.close(fd)  # releases the lock
            if not ok:
                for folder in reversed(created):  # a refused or failed first command leaves no folder
                    try:
                        folder.rmdir()
                    except OSError:
                        break

    def check_links(self) -> None:
        """RunDirError when an entry multivic writes, replaces or deletes in the run directory
        (config.yaml, checkpoints/, export/, report/, ... and the entries of checkpoints/, export/
        and modalities/) is a symbolic link leading outside it: a run directory from elsewhere
        must not make a command write or delete in another folder (remove_partial_checkpoints
        deletes checkpoints/*.tmp, for one). Checked by :meth:`lock`, before anything is written."""
        entries = [self.root / name for name in WRITTEN_ENTRIES]
        for folder in (self.checkpoints, self.export, self.modalities):
            if folder.is_dir() and not leads_outside(folder, self.root):
                entries += sorted(folder.iterdir())
        for path in entries:
            if os.path.islink(path) and leads_outside(path, self.root):
                raise RunDirError(
                    f"{path} is a symbolic link to {os.path.realpath(path)}, outside the run directory {self.root}: "
                    f"{LINK_FIX}"
                )

    def _acquire(self, path: Path, fcntl: Any, fix: str) -> int:
        """An fd of ``path`` holding its exclusive lock, or -1 where the file system has no locks."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for _ in range(100):
            try:
                fd = os.open(path, flags, 0o666)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise RunDirError(
                        f"{self.root} is not writable ({exc.strerror}): this command writes into it; "
                        "fix its permissions, or copy it somewhere writable"
                    ) from None
                kind = "a symbolic link" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
                raise RunDirError(
                    f"{path} cannot be opened to lock the run directory ({kind}): "
                    f"delete it if no multivic process uses {self.root}"
                ) from None
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    raise RunDirError(
                        f"{path} is {file_kind(info.st_mode)}, not multivic's lock file: "
                        f"delete it if no multivic process uses {self.root}"
                    )
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EACCES, errno.EAGAIN):
                        raise RunDirError(
                            f"{self.root} is in use by another process ({_holder(path)}): {fix}"
                        ) from None
                    logger.warning(
                        "%s cannot be locked on this file system (%s): make sure no other process writes it",
                        self.root,
                        exc.strerror or exc,
                    )
                    return fd
                try:
                    current = os.stat(path)
                except FileNotFoundError:
                    current = None
                if current is not None and os.path.samestat(info, current):
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the holder removed this file as we opened it: lock the new one
        raise RunDirError(f"{path} keeps being replaced: {fix}")

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
        if not is_present(self.eval_arrays, f"delete it and re-evaluate the run with `multivic eval {self.root}`"):
            return {}
        if leads_outside(self.eval_arrays, self.root):
            raise RunDirError(f"{self.eval_arrays} leads outside {self.root}: {LINK_FIX}")
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(self.eval_arrays))
        except (SafetensorError, OSError, ValueError) as exc:
            raise RunDirError(
                f"{self.eval_arrays} is damaged ({exc}): re-evaluate the run with `multivic eval {self.root}`"
            ) from None

    def read_config_data(self) -> dict[str, Any]:
        """config.yaml as plain data (yaml.safe_load: nothing is imported or resolved); a
        one-line RunDirError when this is not a run directory or the file is damaged."""
        if not self.root.is_dir() or not is_present(self.config, "is it a multivic run directory?"):
            raise RunDirError(
                f"{self.root} is not a multivic run directory (no config.yaml): pass the --output-dir of a training run"
            )
        config = read_yaml_file(
            self.config,
            "is it a multivic config? restore it from the recipe the run was trained with",
            inside=self.root,
        )
        if not isinstance(config, dict):
            raise RunDirError(f"{self.config} does not hold a mapping of settings: is it a multivic config?")
        return config

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json ({} before the first evaluation); a one-line RunDirError when damaged.
        A null (a metric that was not finite) reads as NaN."""
        fix = f"delete it and re-evaluate the run with `multivic eval {self.root}`"
        if not is_present(self.metrics, fix):
            return {}
        metrics = read_json_file(self.metrics, fix, inside=self.root)
        bad = [
            k for k, v in metrics.items() if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)))
        ]
        if bad:
            raise RunDirError(f"{self.metrics} is damaged ({bad[0]!r} is not a number): {fix}")
        return {k: float("nan") if v is None else v for k, v in metrics.items()}

    def read_history_text(self) -> str:
        """history.csv's text ('' when there is none yet); a one-line RunDirError when it is not
        a regular UTF-8 file of sane size."""
        fix = "restore it, or delete it (the run keeps training; the curves before then are lost)"
        if not is_present(self.history, fix):
            return ""
        return read_text_file(self.history, fix, limit=MAX_HISTORY_FILE, inside=self.root)


class HistoryWriter:
    """Appends rows to history.csv; on resume, drops rows logged after the checkpoint's step."""

    def __init__(self, path: Path, resume_step: int) -> None:
        self.path = path
        self.columns: list[str] | None = None
        fix = "restore it, or delete it (the run keeps training; the curves before then are lost)"
        if is_present(path, fix):
            try:
                reader = csv.DictReader(io.StringIO(read_text_file(path, fix, limit=MAX_HISTORY_FILE), newline=""))
                columns = list(reader.fieldnames or [])
                rows, damaged = [], 0
                for r in reader:
                    step = _int_or_none(r.get("step"))
                    if step is None or None in r:  # not a number, or more cells than columns
                        damaged += r.get("step") not in (None, "") or None in r
                        continue
                    if step <= resume_step:
                        rows.append(r)
            except csv.Error as exc:
                raise RunDirError(f"{path} is damaged ({first_line(exc)}): {fix}") from None
            if damaged:
                logger.warning(
                    "%s: left out %d damaged rows (a step that is not a number, or extra cells)", path, damaged
                )
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


def _int_or_none(text: Any) -> int | None:
    """``text`` as a non-negative int (a history row's step), None when it is not one."""
    text = str(text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None
