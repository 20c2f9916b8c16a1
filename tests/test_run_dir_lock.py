"""One writer per run directory (issue 24, item 6): `multivic train` and `multivic eval` hold
RUN_DIR/.lock; a second process is refused in one line naming the holder and writes nothing; a
dead holder's lock is taken over (the kernel drops it with the process, SIGKILL included)."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml

from multivic.cli import main
from multivic.errors import RunDirError
from multivic.run_dir import LOCK_FILE, RunDir
from tests.helpers.recipes import TINY_RECIPE

HOLDER = textwrap.dedent("""
    import sys
    from multivic.run_dir import RunDir
    with RunDir(sys.argv[1]).lock("multivic train"):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes stdin (or kills it)
""")


class Holder:
    """Another process holding the run directory ``root``."""

    def __init__(self, root):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.strip() == "held", self.proc.stderr.read()

    def release(self):
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    root = tmp_path / "run"
    holder = Holder(root)
    try:
        with pytest.raises(RunDirError) as refused:
            with RunDir(root).lock():
                pytest.fail("two writers hold one run directory")
        message = str(refused.value)
        assert "\n" not in message and str(root) in message
        assert f"pid {holder.proc.pid}" in message and "multivic train" in message and os.uname().nodename in message
    finally:
        holder.release()
    assert not (root / LOCK_FILE).exists()  # removed by the holder when it ends
    with RunDir(root).lock():  # free again
        pass


def test_the_lock_of_a_killed_holder_is_taken_over_and_its_silent_end_is_said(tmp_path, caplog):
    """A run killed by the system (the OOM killer's SIGKILL) could say nothing; the next start
    says it ended without a word, naming it."""
    root = tmp_path / "run"
    holder = Holder(root)
    holder.kill()
    assert (root / LOCK_FILE).exists()  # left behind, naming a dead process
    with caplog.at_level("WARNING", logger="multivic"):
        with RunDir(root).lock("multivic train"):
            assert f'"pid": {os.getpid()}' in (root / LOCK_FILE).read_text()
    assert not (root / LOCK_FILE).exists()
    said = [r.getMessage() for r in caplog.records]
    assert any(f"pid {holder.proc.pid}" in m and "ended without a word" in m for m in said), said
    caplog.clear()
    with caplog.at_level("WARNING", logger="multivic"):
        with RunDir(root).lock("multivic train"):  # a clean end leaves nothing to say
            pass
    assert not caplog.records


def test_a_failed_first_command_leaves_no_folder(tmp_path):
    root = tmp_path / "a" / "run"
    with pytest.raises(ValueError):
        with RunDir(root).lock():
            raise ValueError("the recipe was wrong")
    assert not (tmp_path / "a").exists()


def test_the_other_processes_of_one_launch_do_not_lock(tmp_path, monkeypatch):
    root = tmp_path / "run"
    holder = Holder(root)  # rank 0 of the launch
    try:
        monkeypatch.setenv("RANK", "1")
        with RunDir(root).lock():  # rank 1 of the same launch: not refused
            pass
    finally:
        holder.release()


def test_a_fifo_as_the_lock_file_is_refused_without_hanging(tmp_path):
    root = tmp_path / "run"
    root.mkdir()
    os.mkfifo(root / LOCK_FILE)
    with pytest.raises(RunDirError, match=r"FIFO"):
        with RunDir(root).lock():
            pass


@pytest.fixture
def recipe(tmp_path, tiny_images):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RECIPE.replace("root: null", f"root: {tiny_images}"))
    return path


def test_train_and_eval_into_a_held_run_directory_are_refused_and_write_nothing(tmp_path, recipe, capsys):
    root = tmp_path / "run"
    root.mkdir()
    config = yaml.safe_load(recipe.read_text())
    (root / "config.yaml").write_text(yaml.safe_dump(config))  # a run directory, as its holder wrote it
    holder = Holder(root)
    try:
        before = _files(root)
        for argv in (["train", str(recipe), "--output-dir", str(root), "--no-progress"], ["eval", str(root)]):
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert err.startswith("error: ") and "\n" not in err
            assert "in use by another process" in err and f"pid {holder.proc.pid}" in err, err
            assert _files(root) == before
    finally:
        holder.release()


def test_an_output_dir_inside_another_runs_checkpoints_is_refused(tmp_path, tiny_recipe, capsys):
    """The outer run prunes old checkpoints: a run nested there would be deleted with them."""
    outer = tmp_path / "outer"
    (outer / "checkpoints" / "epoch_0001").mkdir(parents=True)
    (outer / "config.yaml").write_text("seed: 0\n")
    inner = outer / "checkpoints" / "epoch_0001" / "nested"
    assert main(["train", str(tiny_recipe), "--output-dir", str(inner), "--no-progress"]) == 2
    assert "is inside the run directory" in capsys.readouterr().err and not inner.exists()
