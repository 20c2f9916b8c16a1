"""``multivic sweep``: a small grid of ``multivic train`` runs in sibling run directories, then ``compare``.

    multivic sweep RECIPE [--output-dir DIR] [--dry-run] [--no-progress] key=v1,v2 ... [key=value ...]
    multivic sweep SWEEP.yaml [--output-dir DIR] ...

A key given several comma-separated values is an axis of the grid; the grid is the cartesian
product of the axes in the order given (the first varies slowest). A key with one value applies
to every run. Values are split on top-level commas only: ``loss.std_coeff=[25,10],[25,25]`` is
two values, and so is ``data.root='a,b',c``.

A sweep file is a YAML mapping with a top-level ``grid:`` (what tells it from a recipe)::

    recipe: ../quickstart/image_image.yaml      # relative to the sweep file
    grid: {loss.std_coeff: [0, 25], loss.cov_coeff: [0, 1]}
    overrides: [train.epochs=8]                 # optional, every run

Each grid point trains into ``DIR/<name>``, the name made of the varying keys' last parts and
values (``std_coeff=0__cov_coeff=1``), with ``multivic train`` in a subprocess, one after the
other. ``DIR/sweep.json`` records the recipe, the grid and the points; running the same sweep
again skips finished points and lets ``multivic train`` resume the others. A point that fails
is reported and the sweep goes on; the sweep then exits 1. At the end the finished points are
compared (``DIR/compare.csv`` and a Markdown table, as ``multivic compare``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable

import yaml

from multivic.errors import ConfigError, MultivicError, Preempted, RunDirError
from multivic.files import read_json_file, read_text_file, read_yaml_file
from multivic.run_dir import RunDir, atomic_write_text

SWEEP_FILE = "sweep.json"
COMPARE_FILE = "compare.csv"
SWEEP_FORMAT = 1


class SweepFailed(MultivicError):
    """Some points of the sweep failed (each was reported when it did); the others ran."""

    exit_code = 1


@dataclass
class Point:
    name: str
    overrides: list[str]  # the grid's key=value of this point
    config: Any = field(default=None, repr=False, compare=False)  # its loaded config (build_sweep)


@dataclass
class Sweep:
    recipe: str  # as the train commands name it (relative to the working folder when it was given so)
    grid: dict[str, list[str]]  # key -> override values, in the order given
    overrides: list[str] = field(default_factory=list)  # key=value applied to every point
    sweep_file: str | None = None
    points: list[Point] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """What DIR/sweep.json holds."""
        return {
            "format": SWEEP_FORMAT,
            "recipe": self.recipe,
            "recipe_path": str(Path(self.recipe).resolve()),
            "sweep_file": self.sweep_file,
            "grid": self.grid,
            "overrides": self.overrides,
            "points": [{"name": p.name, "overrides": p.overrides} for p in self.points],
        }


# ---------------------------------------------------------------------------------------------
# Parsing


_OPEN, _CLOSE = "[{(", "]})"


def split_values(text: str) -> list[str]:
    """``text`` split on the commas outside brackets, braces, parentheses and quotes.

    ``"0,25"`` gives ``["0", "25"]``; ``"[25,10],[25,25]"`` gives ``["[25,10]", "[25,25]"]``;
    ``"'a,b',c"`` gives ``["'a,b'", "c"]``. Unbalanced brackets or quotes are a ConfigError.
    """
    values, depth, quote, start = [], [], None, 0
    for i, ch in enumerate(text):
        if quote:
            if ch == "\\":
                continue
            if ch == quote and not (i > 0 and text[i - 1] == "\\"):
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth.append(_CLOSE[_OPEN.index(ch)])
        elif ch in _CLOSE:
            if not depth or depth.pop() != ch:
                raise ConfigError(f"unbalanced {ch!r} in {text!r}: close each bracket of a value")
        elif ch == "," and not depth:
            values.append(text[start:i])
            start = i + 1
    if quote or depth:
        raise ConfigError(
            f"unbalanced {quote or '[{('[_CLOSE.index(depth[-1])]!r} in {text!r}: "
            "close each quote and bracket of a value"
        )
    values.append(text[start:])
    return [v.strip() for v in values]


_KEY = re.compile(r"[A-Za-z_][\w-]*(\.[\w-]+)*")


def parse_assignments(
    tokens: Iterable[str], grid_keys: Iterable[str] = (), fixed_keys: Iterable[str] = ()
) -> tuple[dict[str, list[str]], list[str]]:
    """Command-line ``key=v1,v2`` (an axis of the grid) and ``key=value`` (every run) tokens.

    ``grid_keys`` / ``fixed_keys``: keys a sweep file already sets, which the tokens may not repeat.
    """
    grid: dict[str, list[str]] = {}
    fixed: dict[str, str] = {}
    seen = set(grid_keys) | set(fixed_keys)
    for token in tokens:
        if "=" not in token:
            raise ConfigError(f"{token!r} is not key=value or key=v1,v2 (e.g. loss.std_coeff=0,25)")
        key, _, value = token.partition("=")
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise ConfigError(f"{token!r} does not start with a config key (e.g. loss.std_coeff=0,25)")
        if key in seen:
            raise ConfigError(f"{key} is given twice: give each key once, with all its values (key=v1,v2)")
        seen.add(key)
        values = split_values(value)
        if any(v == "" for v in values):
            what = "no values" if values == [""] else "an empty value"
            raise ConfigError(f"{token!r} has {what}: write key=v1,v2 (null for a null value)")
        if len(values) > 1:
            if len(set(values)) < len(values):
                raise ConfigError(f"{token!r} repeats a value: give each value once")
            grid[key] = values
        else:
            fixed[key] = values[0]
    return grid, [f"{k}={v}" for k, v in fixed.items()]


def _override_value(value: Any) -> str:
    """A YAML value of a sweep file as the text of a command-line override (read back the same)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        plain = value and "," not in value and value[0] not in "'\"[{(" and value.strip() == value
        try:
            reads_back = plain and yaml.safe_load(value) == value
        except yaml.YAMLError:
            reads_back = False
        return value if reads_back else json.dumps(value)
    return json.dumps(value, separators=(",", ":"))  # lists and mappings: flow YAML that reads back


SWEEP_FIX = "give a sweep file (recipe:, grid:, overrides:) or a recipe"


def _read_yaml(path: Path) -> Any:
    """A sweep file's YAML as plain data, read like any file from elsewhere (see
    :func:`multivic.files.read_yaml_file`): a regular file of sane size whose aliases do not
    expand past a bound, so a YAML bomb in a grid value is refused instead of expanded."""
    return read_yaml_file(path, SWEEP_FIX, error=ConfigError)


def is_sweep_file(path: Path) -> bool:
    """A YAML mapping with a top-level ``grid:`` key (a recipe never has one)."""
    try:  # composed, not constructed: a YAML bomb is not expanded to find out (read_sweep_file refuses it)
        node = yaml.compose(read_text_file(path, SWEEP_FIX, error=ConfigError), Loader=yaml.SafeLoader)
    except (MultivicError, yaml.YAMLError):
        return False  # a recipe, or not readable: load_config says which
    return isinstance(node, yaml.MappingNode) and any(
        isinstance(key, yaml.ScalarNode) and key.value == "grid" for key, _ in node.value
    )


def read_sweep_file(path: Path) -> tuple[str, dict[str, list[str]], list[str]]:
    """The recipe (resolved against the sweep file's folder), grid and overrides of a sweep file."""
    data = _read_yaml(path)
    unknown = sorted(set(data) - {"recipe", "grid", "overrides"})
    if unknown:
        raise ConfigError(
            f"sweep file {path}: unknown key(s) {', '.join(unknown)}; a sweep file has recipe, grid and overrides"
        )
    recipe = data.get("recipe")
    if not isinstance(recipe, str) or not recipe:
        raise ConfigError(f"sweep file {path} names no recipe: add `recipe: PATH` (relative to the sweep file)")
    recipe_path = recipe if Path(recipe).is_absolute() else os.path.normpath(path.parent / recipe)
    raw_grid = data.get("grid")
    if not isinstance(raw_grid, dict) or not raw_grid:
        raise ConfigError(
            f"sweep file {path}: grid must map keys to lists of values, e.g. grid: {{loss.std_coeff: [0, 25]}}"
        )
    grid: dict[str, list[str]] = {}
    for key, values in raw_grid.items():
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ConfigError(f"sweep file {path}: grid key {key!r} is not a config key such as loss.std_coeff")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep file {path}: grid.{key} must be a non-empty list of values, e.g. [0, 25]")
        texts = [_override_value(v) for v in values]
        if len(set(texts)) < len(texts):
            raise ConfigError(f"sweep file {path}: grid.{key} repeats a value: give each value once")
        grid[key] = texts
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"sweep file {path}: overrides must be a list of key=value strings")
    fixed_grid, fixed = parse_assignments(overrides, grid_keys=grid)
    if fixed_grid:
        key = next(iter(fixed_grid))
        raise ConfigError(f"sweep file {path}: override {key} has several values: put it under grid:")
    return recipe_path, grid, fixed


# ---------------------------------------------------------------------------------------------
# Names


def _safe(text: str) -> str:
    """``text`` as a readable, filesystem-safe name part."""
    text = text.strip("\"'")
    text = re.sub(r"[\[\]{}()\s\"']+", "", text.replace(",", "-").replace(":", "-"))
    text = re.sub(r"[^\w.+-]", "_", text)
    return text or "empty"


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Each key's shortest dotted suffix that no other key ends with (``std_coeff``, ``branch_a.expander``)."""
    parts = {k: k.split(".") for k in keys}
    short = {}
    for key in keys:
        for n in range(1, len(parts[key]) + 1):
            suffix = parts[key][-n:]
            if not any(o != key and parts[o][-n:] == suffix for o in keys):
                break
        short[key] = ".".join(suffix)
    return short


def point_names(grid: dict[str, list[str]]) -> list[Point]:
    """The grid's points, first key slowest, each with a unique, readable folder name."""
    keys = list(grid)
    short = _short_keys(keys)
    points = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        name = "__".join(f"{_safe(short[k])}={_safe(v)}" for k, v in zip(keys, combo))
        points.append(Point(name, [f"{k}={v}" for k, v in zip(keys, combo)]))
    counts: dict[str, int] = {}
    for p in points:
        counts[p.name] = counts.get(p.name, 0) + 1
    for p in points:  # two values that read the same once made safe (a/b and a_b), or too long a name
        if counts[p.name] > 1 or len(p.name.encode()) > 200:
            digest = hashlib.sha1("\0".join(p.overrides).encode()).hexdigest()[:8]
            p.name = f"{p.name[:190]}-{digest}"
    return points


# ---------------------------------------------------------------------------------------------
# Building a sweep from the command line


def build_sweep(target: str, tokens: list[str]) -> Sweep:
    """The sweep a command asks for, checked, with every point's config loaded (nothing is written).

    ``target`` is a recipe or a sweep file; ``tokens`` the command's ``key=...`` arguments.
    """
    from multivic.config import load_config

    path = Path(target)
    if not path.is_file():
        raise ConfigError(
            f"{target} not found: give the path of a recipe or a sweep file, e.g. recipes/sweeps/loss_ablation.yaml"
        )
    sweep_file = None
    grid: dict[str, list[str]] = {}
    fixed: list[str] = []
    recipe = target
    if is_sweep_file(path):
        sweep_file = target
        recipe, grid, fixed = read_sweep_file(path)
        if not Path(recipe).is_file():
            raise ConfigError(
                f"sweep file {target} names recipe {recipe}, which is not found: fix its recipe: (relative to the "
                "sweep file)"
            )
    more_grid, more_fixed = parse_assignments(tokens, grid_keys=grid, fixed_keys=[o.partition("=")[0] for o in fixed])
    grid.update(more_grid)
    fixed += more_fixed
    if not grid:
        raise ConfigError("nothing to sweep: give at least one key several values, e.g. loss.std_coeff=0,25")
    sweep = Sweep(recipe=recipe, grid=grid, overrides=fixed, sweep_file=sweep_file, points=point_names(grid))
    if len(sweep.points) < 2:
        raise ConfigError("the grid has one point: give a key several values (key=v1,v2), or use multivic train")
    for point in sweep.points:  # every mistake in a key or value now, before anything is written
        try:
            point.config = load_config(recipe, point_overrides(sweep, point))
        except ConfigError as exc:
            raise ConfigError(f"point {point.name}: {exc}") from None
    return sweep


def point_overrides(sweep: Sweep, point: Point) -> list[str]:
    return [*sweep.overrides, *point.overrides]


def train_args(sweep: Sweep, point: Point, out: Path, progress: bool) -> list[str]:
    """The ``multivic train`` arguments of one point (after the program)."""
    return [
        "train",
        sweep.recipe,
        "--output-dir",
        str(out / point.name),
        *([] if progress else ["--no-progress"]),
        *point_overrides(sweep, point),
    ]


def default_output_dir(target: str) -> Path:
    stem = Path(target).stem
    return Path("runs") / (stem if is_sweep_file(Path(target)) else f"sweep-{stem}")


# ---------------------------------------------------------------------------------------------
# The sweep directory


def _grid_text(grid: dict[str, list[str]]) -> str:
    return " ".join(f"{k}={','.join(v)}" for k, v in grid.items())


def prepare_dir(out: Path, sweep: Sweep) -> None:
    """Refuse a folder that holds another sweep or something else; then write sweep.json."""
    record = sweep.record()
    existing = out / SWEEP_FILE
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--output-dir {out} is an existing file, not a folder: choose another --output-dir")
    if existing.is_file():
        fix = "choose another --output-dir, or delete it to start the sweep there again"
        old = read_json_file(existing, fix, inside=out)  # data from elsewhere: bounded, no RecursionError
        old_recipe, old_grid = old.get("recipe_path"), old.get("grid")
        if not isinstance(old_recipe, str) or not isinstance(old_grid, dict):
            raise RunDirError(f"{existing} is not readable (no recipe_path and grid): {fix}")
        if old_recipe != record["recipe_path"]:
            raise RunDirError(
                f"{out} holds a sweep of recipe {old_recipe}, this command sweeps {record['recipe_path']}: "
                "use another --output-dir, or the same recipe and grid to resume"
            )
        if old_grid != record["grid"]:
            raise RunDirError(
                f"{out} holds the sweep {_grid_text(old_grid)}, this command asks {_grid_text(record['grid'])}: "
                "use another --output-dir, or the same grid to resume"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise RunDirError(f"{out} exists, is not empty and holds no {SWEEP_FILE}: choose another --output-dir")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(existing, json.dumps(record, indent=2) + "\n")


def is_finished(run_dir: RunDir, cfg: Any) -> bool:
    """Whether ``multivic train`` with ``cfg`` into ``run_dir`` has nothing left to do: the run
    directory is this config's (train's own check), its resume point (train's own choice) has
    completed ``train.epochs``, and metrics.json was written after that checkpoint."""
    from multivic.commands.train import check_run_dir
    from multivic.train.checkpoint import TRAINER_FILE, find_resume_point

    if not run_dir.metrics.is_file() or not run_dir.config.is_file():
        return False
    try:
        check_run_dir(run_dir, cfg)  # another config (or a longer train.epochs): train decides
        start = find_resume_point(run_dir)
    except MultivicError:
        return False  # multivic train reports what is wrong with it
    if start is None:
        return cfg.train.epochs == 0
    state = start.meta["state"]
    done = int(state.get("epoch", 0)) >= cfg.train.epochs and int(state.get("steps_in_epoch", 0)) == 0
    return done and run_dir.metrics.stat().st_mtime >= (start.path / TRAINER_FILE).stat().st_mtime


# ---------------------------------------------------------------------------------------------
# Running


def _pump(src: IO[bytes], dst: IO[str], tail: bytearray) -> None:
    """Copy a child's output to ours as it comes (progress bars included), keeping its tail."""
    out = getattr(dst, "buffer", None)
    while chunk := src.read1(4096):  # type: ignore[attr-defined]  # a BufferedReader
        if out is not None:
            out.write(chunk)
        else:  # a replaced sys.stdout/stderr (pytest's capture) takes text
            dst.write(chunk.decode(errors="replace"))
        dst.flush()
        tail.extend(chunk)
        del tail[:-8192]


def last_error_line(tail: bytes) -> str:
    """The child's ``error: ...`` line, or its last line of output."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", tail.decode(errors="replace")) if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    return errors[-1] if errors else (lines[-1] if lines else "(no output)")


_FORWARDED = (signal.SIGTERM, signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else (signal.SIGTERM,)


def run_point(cmd: list[str]) -> tuple[int, str]:
    """Run one ``multivic train`` to its end, streaming its output; its exit code and error line.

    SIGTERM / SIGUSR1 sent to the sweep go to the run, which checkpoints and exits 75.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # its lines arrive as it prints them
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    tails = (bytearray(), bytearray())
    threads = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout, tails[0]), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr, tails[1]), daemon=True),
    ]
    for t in threads:
        t.start()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _FORWARDED:
            previous[sig] = signal.signal(sig, lambda signum, frame: proc.send_signal(signum))
    try:
        try:
            code = proc.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the run too: let it stop, then stop the sweep
            proc.wait()
            raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for t in threads:
            t.join()
    return code, last_error_line(bytes(tails[1]) or bytes(tails[0]))


def _exit_text(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit {code}"


def run_sweep(
    target: str,
    tokens: list[str],
    output_dir: str | None = None,
    dry_run: bool = False,
    progress: bool = True,
    echo=print,
) -> Any:
    """The ``multivic sweep`` command: returns the comparison table (None when it has none)."""
    sweep = build_sweep(target, tokens)
    out = Path(output_dir) if output_dir else default_output_dir(target)
    if dry_run:
        for point in sweep.points:
            echo(shlex.join(["multivic", *train_args(sweep, point, out, progress)]))
        return None
    prepare_dir(out, sweep)

    finished, failed = [], []
    for i, point in enumerate(sweep.points, 1):
        run_dir = RunDir(out / point.name)
        if is_finished(run_dir, point.config):
            print(
                f"sweep [{i}/{len(sweep.points)}] {point.name}: finished before, skipped", file=sys.stderr, flush=True
            )
            finished.append(run_dir.root)
            continue
        print(f"sweep [{i}/{len(sweep.points)}] {point.name}: {' '.join(point.overrides)}", file=sys.stderr, flush=True)
        code, error = run_point([sys.executable, "-m", "multivic.cli", *train_args(sweep, point, out, progress)])
        if code == 0:
            finished.append(run_dir.root)
        elif code == Preempted.exit_code:
            raise Preempted(
                f"sweep stopped by a signal during {point.name} (checkpointed): run the same command to resume"
            )
        elif code == 130:
            raise KeyboardInterrupt
        else:
            failed.append((point.name, code, error))
            print(f"sweep: {point.name} failed ({_exit_text(code)}): {error}", file=sys.stderr, flush=True)

    table = None
    if len(finished) >= 2:
        from multivic.commands.compare import compare_runs, to_markdown, write_csv

        table = compare_runs(finished)
        write_csv(table, out / COMPARE_FILE)
        echo(to_markdown(table))
        print(f"saved as {out / COMPARE_FILE}", file=sys.stderr)
    else:
        print(f"sweep: {len(finished)} finished point(s), no comparison", file=sys.stderr)
    if failed:
        names = ", ".join(f"{name} ({_exit_text(code)})" for name, code, _ in failed)
        raise SweepFailed(
            f"{len(failed)} of {len(sweep.points)} points failed: {names}; fix and run the same command to resume"
        )
    return table
