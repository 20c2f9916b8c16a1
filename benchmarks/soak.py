"""Soak test of resuming: the image quick-start on damaged data with a NaN step, killed again and
again, must end with exactly the weights of an uninterrupted run.

    uv run --locked python benchmarks/soak.py          # about 5 minutes on 2 idle CPU cores
    uv run --locked python benchmarks/soak.py --epochs 6 --kill-every 30 --seed 1 --keep

1. The built-in shapes data set is copied into a temporary folder (drawn there when it is not in
   the cache) and a few files are damaged: random bytes, a truncated PNG, an empty file in train,
   and a truncated PNG in val. Both runs below read this same folder.
2. A clean reference: ``multivic train`` on the quick-start recipe, with ``train.epochs=E``,
   ``train.checkpoint_every_steps=K``, ``train.on_nonfinite=skip``, ``data.max_bad_fraction``
   raised, history rows every step, and the objective ``vicreg_poisoned``
   (benchmarks/soak_plugins.py, through the recipe's ``imports:``), whose loss is NaN at step P
   in every run, resumed or not (its step counter is a buffer, so checkpoints carry it).
3. The soak: the same command in its own session (its data-loading workers are in its process
   group), the whole group SIGKILLed S seconds after each start (± jitter, seeded; S adapts to
   the machine's measured speed unless given), except one SIGTERM to the group (sent once the
   process has logged a step, so that it reaches the training loop; expected: a checkpoint and
   exit code 75); restarted with the same command until it exits 0. After --max-kills
   interruptions the last process runs to the end.
4. A summary: kills, SIGTERMs, restarts, exit codes, optimiser steps run and redone (steps a
   process logged that an earlier process had already logged, i.e. lost since its checkpoint),
   processes of a killed group left alive, bad_samples / skipped_steps of both histories, wall
   times, whether every history row (but samples/s) and every exported tensor are bitwise equal,
   and both runs' metrics. Exits 1 when the exported weights differ, the soak did not finish,
   or the SIGTERM did not give exit code 75.
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).resolve().with_name("soak_plugins.py")
RECIPE = ROOT / "recipes" / "quickstart" / "image_image.yaml"
RESUMED = re.compile(r"resumed from (\S+) at epoch (\d+), step (\d+)")
PREEMPTED_EXIT = 75

sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--epochs", type=int, default=6, help="train.epochs (default 6: 108 optimiser steps)")
    p.add_argument("--checkpoint-every-steps", type=int, default=5, help="train.checkpoint_every_steps K")
    p.add_argument(
        "--kill-every",
        default="auto",
        help="seconds S from each start to its kill; auto (default): per process, the last measured "
        "start-up (time to the first history row) plus the time of an eighth of the run's steps at the "
        "last measured seconds per step (the clean run's at first), so that the kills keep landing "
        "across the run however loaded the machine is",
    )
    p.add_argument("--jitter", type=float, default=0.5, help="each interval is S × uniform(1 - j, 1 + j)")
    p.add_argument("--max-kills", type=int, default=8, help="interruptions (SIGTERM included) before it may finish")
    p.add_argument("--sigterm-at", type=int, default=2, help="which interruption is a SIGTERM (1-based; 0: none)")
    p.add_argument("--poison-step", type=int, default=23, help="optimiser step whose loss is NaN (0: none)")
    p.add_argument("--image-size", type=int, default=32, help="data.image_size")
    p.add_argument("--linear-epochs", type=int, default=50, help="eval.linear_epochs")
    p.add_argument("--seed", type=int, default=0, help="seeds the kill times and the damaged bytes")
    p.add_argument("--workdir", type=Path, default=None, help="where data and runs go (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (runs, logs) at the end")
    p.add_argument("overrides", nargs="*", help="more key=value overrides for both runs")
    return p.parse_args()


# --------------------------------------------------------------------------------------------
# Data and recipe


def prepare_data(dest: Path, seed: int) -> list[str]:
    """The built-in shapes (train and val) in ``dest``, with a few files damaged; what was damaged."""
    from multivic.data.builtin import builtin_root, write_shapes_dataset

    cached = builtin_root("shapes-v1")
    if (cached / ".complete").exists():
        shutil.copytree(cached / "train", dest / "train")
        shutil.copytree(cached / "val", dest / "val")
    else:
        write_shapes_dataset(dest)  # the built-in set's defaults: 400 + 100 per class at 32 px
    rng = random.Random(seed)
    damaged = []

    def damage(rel: str, how: str) -> None:
        path = dest / rel
        data = path.read_bytes()
        if how == "random bytes":
            path.write_bytes(bytes(rng.getrandbits(8) for _ in range(len(data))))
        elif how == "truncated PNG":
            path.write_bytes(data[: len(data) // 3])
        elif how == "zero bytes":
            path.write_bytes(b"")
        damaged.append(f"{rel} ({how}, was {len(data)} bytes)")

    damage("train/circle/00007.png", "random bytes")
    damage("train/star/00011.png", "truncated PNG")
    damage("train/ring/00003.png", "zero bytes")
    damage("val/square/00005.png", "truncated PNG")
    return damaged


def write_recipe(path: Path, poison_step: int) -> None:
    """The quick-start recipe with the poisoned objective loaded from benchmarks/soak_plugins.py."""
    import yaml

    recipe = yaml.safe_load(RECIPE.read_text())
    recipe["imports"] = [str(PLUGIN)]
    recipe["loss"] = {"name": "vicreg_poisoned", "poison_step": poison_step}
    path.write_text(
        f"# benchmarks/soak.py: {RECIPE.relative_to(ROOT)} with a NaN at step {poison_step}\n"
        + yaml.safe_dump(recipe, sort_keys=False)
    )


# --------------------------------------------------------------------------------------------
# Running, killing, restarting


@dataclass
class Attempt:
    number: int
    rc: int | None = None
    seconds: float = 0.0
    signal_sent: str | None = None  # "SIGKILL" / "SIGTERM"
    sent_after: float | None = None
    resumed_step: int | None = None  # None: started from step 0
    resumed_from: str | None = None
    last_step: int = 0  # the last step in history.csv when the attempt ended
    first_row_after: float | None = None  # seconds from the start to this process's first history row
    rows: list[tuple[float, int]] = field(default_factory=list)  # (seconds from the start, step) of its rows

    def seconds_per_step(self) -> float | None:
        if len(self.rows) < 2 or self.rows[-1][1] <= self.rows[0][1]:
            return None
        return (self.rows[-1][0] - self.rows[0][0]) / (self.rows[-1][1] - self.rows[0][1])

    left_behind: list[str] = field(default_factory=list)  # processes of its group alive after it ended
    log: Path | None = None


def history_rows(run: Path) -> list[dict[str, str]]:
    try:
        with (run / "history.csv").open(newline="") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def last_logged_step(run: Path) -> int:
    rows = history_rows(run)
    return max((int(r["step"]) for r in rows), default=0)


def group_members(pgid: int) -> list[str]:
    """Live (not zombie) processes in process group ``pgid``, as "pid:name"."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            found.append(f"{entry.name}:{name}")
    return found


def wait_group_gone(pgid: int, timeout: float = 10.0) -> list[str]:
    """Wait for the group to empty; the members still alive after ``timeout`` (then killed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        members = group_members(pgid)
        if not members:
            return []
        time.sleep(0.2)
    members = group_members(pgid)
    if members:
        try:
            os.killpg(pgid, signal.SIGKILL)  # our own child's group: clean up for the next attempt
        except ProcessLookupError:
            pass
    return members


def history_mark(run: Path) -> tuple[int, int] | None:
    try:
        st = (run / "history.csv").stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def run_once(
    cmd: list[str], log: Path, attempt: Attempt, run: Path, interrupt_at: float | None, sigterm: bool, total_steps: int
) -> Attempt:
    """Run ``cmd`` once; SIGKILL its group ``interrupt_at`` seconds after the start, or, with
    ``sigterm``, SIGTERM its group once that time has passed and this process has appended a
    history row (so that the signal reaches the training loop, not the start-up or evaluation)."""
    start = time.monotonic()
    seen, changes = history_mark(run), 0
    rows_at = 1 if seen is None else 2  # a resumed process rewrites history.csv once, then appends
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        pgid = proc.pid
        while proc.poll() is None:
            now = time.monotonic() - start
            mark = history_mark(run)
            if mark != seen:
                changes, seen = changes + 1, mark
                if changes == rows_at:
                    attempt.first_row_after = now
                if changes >= rows_at:
                    attempt.rows.append((now, last_logged_step(run)))
            if interrupt_at is not None and attempt.signal_sent is None and now >= interrupt_at:
                if not sigterm:
                    os.killpg(pgid, signal.SIGKILL)
                    attempt.signal_sent, attempt.sent_after = "SIGKILL", now
                elif attempt.first_row_after is not None and last_logged_step(run) < total_steps - 1:
                    os.killpg(pgid, signal.SIGTERM)  # the whole group, as a scheduler would
                    attempt.signal_sent, attempt.sent_after = "SIGTERM", now
            if attempt.signal_sent == "SIGTERM" and now - attempt.sent_after > 120:
                os.killpg(pgid, signal.SIGKILL)  # it did not stop after its step: a failure
                attempt.signal_sent = "SIGTERM (ignored for 120 s, then SIGKILL)"
            time.sleep(0.05)
    attempt.rc = proc.returncode
    attempt.seconds = time.monotonic() - start
    attempt.left_behind = wait_group_gone(pgid)
    m = RESUMED.search(log.read_text(errors="replace"))
    if m:
        attempt.resumed_from, attempt.resumed_step = m.group(1).rstrip("/").rsplit("/", 1)[-1], int(m.group(3))
    attempt.last_step = last_logged_step(run)
    attempt.log = log
    return attempt


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join("    | " + line for line in path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Comparing


def compare_exports(a: Path, b: Path) -> tuple[int, list[str]]:
    """(tensors compared, differences) over every export/*.safetensors, bit for bit."""
    import torch
    from safetensors import safe_open

    files_a = sorted(p.name for p in (a / "export").glob("*.safetensors"))
    files_b = sorted(p.name for p in (b / "export").glob("*.safetensors"))
    diffs, count = [], 0
    if files_a != files_b or not files_a:
        return 0, [f"export files differ: {files_a} vs {files_b}"]
    for name in files_a:
        with safe_open(str(a / "export" / name), "pt") as fa, safe_open(str(b / "export" / name), "pt") as fb:
            keys_a, keys_b = set(fa.keys()), set(fb.keys())
            if keys_a != keys_b:
                diffs.append(f"{name}: tensor names differ ({sorted(keys_a ^ keys_b)[:5]})")
            for key in sorted(keys_a & keys_b):
                ta, tb = fa.get_tensor(key), fb.get_tensor(key)
                count += 1
                same = (
                    ta.dtype == tb.dtype
                    and ta.shape == tb.shape
                    and torch.equal(
                        ta.contiguous().reshape(-1).view(torch.uint8), tb.contiguous().reshape(-1).view(torch.uint8)
                    )
                )
                if not same:
                    delta = (ta.double() - tb.double()).abs().max().item() if ta.shape == tb.shape else float("nan")
                    diffs.append(f"{name}:{key} (max |diff| {delta:.3g})")
    return count, diffs


def compare_histories(a: list[dict[str, str]], b: list[dict[str, str]]) -> list[str]:
    """Rows that differ in anything but the throughput."""
    if len(a) != len(b):
        return [f"{len(a)} rows vs {len(b)}"]
    diffs = []
    for ra, rb in zip(a, b):
        keys = (set(ra) | set(rb)) - {"samples_per_s"}
        bad = sorted(k for k in keys if ra.get(k) != rb.get(k))
        if bad:
            diffs.append(f"step {ra.get('step')}: {', '.join(bad[:4])}")
    return diffs


def final_counters(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "no history"
    last = rows[-1]
    nan_steps = [r["step"] for r in rows if r.get("loss") in ("nan", "inf", "-inf")]
    return (
        f"step {last['step']}, bad_samples {last.get('bad_samples')}, skipped_steps {last.get('skipped_steps')}"
        f" (non-finite loss logged at step {', '.join(nan_steps) or 'none'})"
    )


def read_metrics(run: Path) -> dict:
    try:
        return json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


# --------------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="multivic-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    try:
        return soak(args, work, rng)
    finally:
        if args.keep or args.workdir:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def soak(args: argparse.Namespace, work: Path, rng: random.Random) -> int:
    t0 = time.monotonic()
    data = work / "data"
    damaged = prepare_data(data, args.seed)
    recipe = work / "soak.yaml"
    write_recipe(recipe, args.poison_step)
    overrides = [
        f"data.root={data}",
        "data.builtin=null",
        f"data.image_size={args.image_size}",
        "data.max_bad_fraction=0.05",
        f"train.epochs={args.epochs}",
        f"train.checkpoint_every_steps={args.checkpoint_every_steps}",
        "train.on_nonfinite=skip",
        "train.log_every=1",
        f"eval.linear_epochs={args.linear_epochs}",
        *args.overrides,
    ]
    clean_run, soak_run, logs = work / "clean", work / "soak", work / "logs"
    logs.mkdir()

    def command(run: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "multivic.cli",
            "train",
            str(recipe),
            "--output-dir",
            str(run),
            "--no-progress",
            *overrides,
        ]

    print(f"work folder $WORK = {work}")
    print(f"data: $WORK/data ({time.monotonic() - t0:.1f} s); damaged: {'; '.join(damaged)}")
    print("command: " + " ".join(command(work / "RUN")).replace(str(work), "$WORK").replace(sys.executable, "python"))
    print(
        f"recipe: {RECIPE.relative_to(ROOT)} + imports [{PLUGIN.relative_to(ROOT)}], loss vicreg_poisoned "
        f"(NaN at step {args.poison_step})",
        flush=True,
    )

    # -- the clean reference
    start = time.monotonic()
    clean = run_once(command(clean_run), logs / "clean.log", Attempt(0), clean_run, None, False, 0)
    clean_wall = time.monotonic() - start
    total_steps = clean.last_step
    print(
        f"clean run: exit {clean.rc} in {clean_wall:.1f} s, {total_steps} optimiser steps, first history row after "
        f"{clean.first_row_after or 0:.1f} s",
        flush=True,
    )
    if clean.rc != 0:
        print(tail(clean.log, 30))
        print("FAIL: the clean reference run did not finish")
        return 1
    auto = args.kill_every == "auto"
    startup, per_step = clean.first_row_after or 0.0, clean.seconds_per_step() or 1.0

    def kill_every() -> float:
        return startup + per_step * total_steps / 8 if auto else float(args.kill_every)

    print(
        f"soak: kill every {'auto: ' if auto else ''}{kill_every():.1f} s ± {args.jitter:.0%}"
        + (f" (start-up {startup:.1f} s + {total_steps / 8:.1f} steps of {per_step:.2f} s)" if auto else "")
        + f", at most {args.max_kills} interruptions, interruption {args.sigterm_at} a SIGTERM",
        flush=True,
    )

    # -- the soak
    attempts: list[Attempt] = []
    interruptions = 0
    start = time.monotonic()
    while True:
        n = len(attempts) + 1
        interrupt_at = None
        sigterm = False
        if interruptions < args.max_kills:
            interrupt_at = kill_every() * rng.uniform(1 - args.jitter, 1 + args.jitter)
            sigterm = interruptions + 1 == args.sigterm_at
        a = run_once(
            command(soak_run), logs / f"soak_{n:02d}.log", Attempt(n), soak_run, interrupt_at, sigterm, total_steps
        )
        attempts.append(a)
        if a.signal_sent:
            interruptions += 1
        if a.first_row_after is not None:  # auto: follow the machine's load
            startup, per_step = a.first_row_after, a.seconds_per_step() or per_step
        where = f"resumed from {a.resumed_from}" if a.resumed_from else "from step 0"
        ran = f"ran steps {(a.resumed_step or 0) + 1}-{a.last_step}" if a.first_row_after is not None else "ran no step"
        sent = f"{a.signal_sent} after {a.sent_after:.1f} s (planned {interrupt_at:.1f} s), " if a.signal_sent else ""
        print(
            f"  attempt {n:2d}: {where}, {ran}, {sent}exit {a.rc} after {a.seconds:.1f} s"
            + (f", left behind: {a.left_behind}" if a.left_behind else ""),
            flush=True,
        )
        if a.rc == 0:
            break
        if a.rc not in (-signal.SIGKILL, PREEMPTED_EXIT) or (a.signal_sent is None):
            print(tail(a.log))
            bad_in_row = [x for x in attempts[-2:] if x.rc not in (-signal.SIGKILL, PREEMPTED_EXIT, 0)]
            if len(bad_in_row) == 2:
                print("FAIL: two unexpected exits in a row; stopping the soak")
                break
    soak_wall = time.monotonic() - start

    # -- the summary
    sigkills = [a for a in attempts if a.signal_sent == "SIGKILL"]
    sigterms = [a for a in attempts if a.signal_sent and a.signal_sent.startswith("SIGTERM")]
    # Steps each process ran (logged), and how many of them an earlier process had already run.
    ran = [a.last_step - (a.resumed_step or 0) if a.first_row_after is not None else 0 for a in attempts]
    frontier, redone = 0, []
    for a, n in zip(attempts, ran):
        start_step = a.resumed_step or 0
        redone.append(max(0, min(frontier, start_step + n) - start_step))
        frontier = max(frontier, start_step + n)
    codes = collections.Counter(a.rc for a in attempts)
    finished = attempts[-1].rc == 0
    clean_rows, soak_rows = history_rows(clean_run), history_rows(soak_run)
    history_diffs = compare_histories(clean_rows, soak_rows)
    n_tensors, weight_diffs = compare_exports(clean_run, soak_run) if finished else (0, ["the soak did not finish"])
    clean_metrics, soak_metrics = read_metrics(clean_run), read_metrics(soak_run)
    term_ok = all(a.rc == PREEMPTED_EXIT for a in sigterms)
    left_behind = [m for a in attempts for m in a.left_behind]

    print()
    print("=" * 78)
    print(
        f"soak summary (epochs {args.epochs}, checkpoint every {args.checkpoint_every_steps} steps, kill every "
        f"{args.kill_every}{'' if auto else ' s'} ± {args.jitter:.0%}, seed {args.seed}, NaN at step "
        f"{args.poison_step})"
    )
    print(f"  wall time:        clean {clean_wall:.1f} s, soak {soak_wall:.1f} s, total {time.monotonic() - t0:.1f} s")
    print(
        f"  interruptions:    {len(sigkills)} SIGKILL (to the process group), {len(sigterms)} SIGTERM "
        f"(exit {[a.rc for a in sigterms]}, expected {PREEMPTED_EXIT}: {'ok' if term_ok and sigterms else 'NO'})"
    )
    print(f"  restarts:         {len(attempts) - 1} ({len(attempts)} processes)")
    print(f"  exit codes:       {dict(sorted(codes.items(), key=lambda kv: str(kv[0])))} (-9: SIGKILL)")
    print(f"  resumed from:     {[a.resumed_from or 'start' for a in attempts]}")
    print(f"  steps run:        {sum(ran)} for {total_steps}; redone {sum(redone)} (per process: {redone})")
    print(f"  left behind:      {left_behind or 'no process of a killed group outlived it'}")
    print(f"  clean history:    {final_counters(clean_rows)}")
    print(f"  soak history:     {final_counters(soak_rows)}")
    rows_verdict = (
        f"all {len(clean_rows)} equal (but samples/s)"
        if not history_diffs
        else "DIFFER: " + "; ".join(history_diffs[:5])
    )
    print(f"  history rows:     {rows_verdict}")
    print(
        f"  exported weights: {n_tensors} tensors compared, "
        + ("all bitwise equal" if not weight_diffs else f"{len(weight_diffs)} DIFFER: " + "; ".join(weight_diffs[:5]))
    )
    keys = sorted(set(clean_metrics) | set(soak_metrics))
    print(f"  metrics:          {'equal' if clean_metrics == soak_metrics else 'DIFFER'}")
    for k in keys:
        print(f"    {k:32s} clean {clean_metrics.get(k)!s:>22}   soak {soak_metrics.get(k)!s:>22}")
    ok = finished and not weight_diffs and term_ok
    print("RESULT: " + ("PASS" if ok else "FAIL") + ("" if finished else " (the soak did not finish)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
