"""As a user meets it: `multivic train` killed with SIGKILL in the middle of an epoch, data-loading
workers on, then the same command again; and SIGTERM to the whole process group (what a
scheduler sends). Both end with exported weights bitwise equal to an uninterrupted run's."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

# 72 training images / batch 16 = 4 steps per epoch; 4 epochs = 16 steps; a checkpoint every 3.
ARGS = [
    "train.epochs=4",
    "train.checkpoint_every_steps=3",
    "train.keep_checkpoints=2",
    "data.num_workers=2",
    "eval.enabled=false",
    "train.log_every=1",
]


def _command(recipe, out):
    return [
        sys.executable,
        "-m",
        "multivic.cli",
        "train",
        str(recipe),
        "--output-dir",
        str(out),
        "--no-progress",
        *ARGS,
    ]


def _run(recipe, out):
    proc = subprocess.run(_command(recipe, out), capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _start(recipe, out):
    return subprocess.Popen(
        _command(recipe, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=_env(),
    )  # its own group: the workers get the signal too


def _wait_for(predicate, proc, timeout=240):
    end = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"exited {proc.returncode} early: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _latest(out):
    pointer = out / "checkpoints" / "LATEST"
    return pointer.read_text().strip() if pointer.is_file() else ""


def _assert_same_exports(a, b):
    for f in sorted((a / "export").glob("*.safetensors")):
        x, y = load_file(str(f)), load_file(str(b / "export" / f.name))
        assert x.keys() == y.keys()
        for k in x:
            assert torch.equal(x[k], y[k]), f"{f.name}:{k} differs from the uninterrupted run"


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_images):
    from tests.helpers.recipes import TINY_RECIPE

    path = tmp_path_factory.mktemp("recipe") / "tiny.yaml"
    path.write_text(TINY_RECIPE.replace("root: null", f"root: {tiny_images}"))
    return path


@pytest.fixture(scope="module")
def uninterrupted(recipe, tmp_path_factory):
    """One uninterrupted run for both tests."""
    out = tmp_path_factory.mktemp("whole") / "run"
    _run(recipe, out)
    return out


def test_sigkill_in_the_middle_of_an_epoch_with_workers_then_the_same_command(recipe, tmp_path, uninterrupted):
    out = tmp_path / "killed"
    proc = _start(recipe, out)
    _wait_for(lambda: _latest(out) == "step_000000006", proc)  # step 6: the middle of epoch 2
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "export").exists()
    resumed = _run(recipe, out)
    assert "resumed from" in resumed.stderr
    _assert_same_exports(uninterrupted, out)


def test_sigterm_to_the_process_group_checkpoints_exits_75_and_resumes_exactly(recipe, tmp_path, uninterrupted):
    out = tmp_path / "terminated"
    proc = _start(recipe, out)
    _wait_for(
        lambda: (out / "history.csv").is_file() and len((out / "history.csv").read_text().splitlines()) >= 6, proc
    )
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-2000:]
    assert "stopped by a signal after step" in err and "Traceback" not in err
    assert _latest(out).startswith("step_")
    _run(recipe, out)
    _assert_same_exports(uninterrupted, out)
