"""Checkpoints survive what a kill, a full disk or a careless user does to a run directory."""

import logging
import shutil

import pytest

from multivic.errors import RunDirError
from multivic.train import checkpoint as checkpoint_module
from tests.helpers.resume import assert_bitwise_equal, checkpoint_state
from tests.helpers.toy import PairsOfVectors, train, vicreg_model


def names(run):
    return sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir())


def test_a_latest_naming_a_missing_checkpoint_falls_back_to_the_newest_complete_one(tmp_path, caplog):
    run = tmp_path / "run"
    train(vicreg_model(), PairsOfVectors(64), run, epochs=2, keep_checkpoints=2)
    shutil.rmtree(run / "checkpoints" / "epoch_0002")  # LATEST still names it
    with caplog.at_level(logging.WARNING, logger="multivic"):
        result = train(vicreg_model(), PairsOfVectors(64), run, epochs=2, keep_checkpoints=2)
    assert result.resumed_from == "epoch_0001" and result.step == 8
    assert "names 'epoch_0002', which is missing or incomplete; resuming from epoch_0001" in caplog.text
    assert names(run) == ["epoch_0001", "epoch_0002"]


def test_a_latest_that_cannot_be_honoured_and_no_other_checkpoint_stops_and_deletes_nothing(tmp_path):
    run = tmp_path / "run"
    train(vicreg_model(), PairsOfVectors(64), run, epochs=1)
    (run / "checkpoints" / "LATEST").write_text("epoch_0009\n")
    (run / "checkpoints" / "epoch_0001" / "trainer.json").unlink()  # incomplete
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    with pytest.raises(RunDirError, match=r"LATEST names checkpoint 'epoch_0009', which is missing or incomplete"):
        train(vicreg_model(), PairsOfVectors(64), run, epochs=2)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    run, data = tmp_path / "run", PairsOfVectors(64)
    whole = train(vicreg_model(), data, tmp_path / "whole", epochs=2)
    write_weights = checkpoint_module.write_weights

    def killed(tensors, aliases, path):  # the weights of epoch 2 half written, then the process dies
        if path.parent.name == "epoch_0002.tmp":
            path.write_bytes(b"\0" * 10)
            raise KeyboardInterrupt
        write_weights(tensors, aliases, path)

    monkeypatch.setattr(checkpoint_module, "write_weights", killed)
    with pytest.raises(KeyboardInterrupt):
        train(vicreg_model(), data, run, epochs=2)
    assert (
        names(run) == ["epoch_0001", "epoch_0002.tmp"]
        and (run / "checkpoints" / "LATEST").read_text() == "epoch_0001\n"
    )
    monkeypatch.undo()
    resumed = train(vicreg_model(), data, run, epochs=2)
    assert resumed.resumed_from == "epoch_0001" and names(run) == ["epoch_0002"]  # the .tmp is cleaned up
    assert_bitwise_equal(checkpoint_state(run), checkpoint_state(tmp_path / "whole"))
    assert_bitwise_equal(resumed.model.state_dict(), whole.model.state_dict())


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.pt", "rng_0.pt"])
def test_a_truncated_checkpoint_file_is_a_one_line_error_naming_it(tmp_path, damaged):
    run = tmp_path / "run"
    train(vicreg_model(), PairsOfVectors(64), run, epochs=1)
    path = run / "checkpoints" / "epoch_0001" / damaged
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(RunDirError, match=r"checkpoint .*epoch_0001 cannot be loaded .*damaged; delete it") as err:
        train(vicreg_model(), PairsOfVectors(64), run, epochs=2)
    assert "\n" not in str(err.value)


def test_a_pickled_file_in_a_checkpoint_is_never_unpickled(tmp_path):
    """A crafted optimizer.pt that would run code is refused by weights_only loading."""
    import pickle

    run = tmp_path / "run"
    train(vicreg_model(), PairsOfVectors(64), run, epochs=1)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (run / "checkpoints" / "epoch_0001" / "optimizer.pt").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(RunDirError, match="cannot be loaded"):
        train(vicreg_model(), PairsOfVectors(64), run, epochs=2)
    assert not marker.exists()


def test_checkpoints_of_the_pickle_format_are_refused_with_the_fix(tmp_path):
    run = tmp_path / "run"
    old = run / "checkpoints" / "epoch_0001"
    old.mkdir(parents=True)
    (old / "pytorch_model.bin").write_bytes(b"x")
    (old / "random_states_0.pkl").write_bytes(b"x")
    (run / "checkpoints" / "LATEST").write_text("epoch_0001\n")
    with pytest.raises(RunDirError, match="load with pickle.*new --output-dir"):
        train(vicreg_model(), PairsOfVectors(64), run, epochs=2)
    assert (old / "pytorch_model.bin").exists()


def test_only_the_newest_checkpoints_are_kept_and_only_after_a_new_one_is_complete(tmp_path):
    run = tmp_path / "run"
    train(vicreg_model(), PairsOfVectors(64), run, epochs=3, checkpoint_every_steps=3, keep_checkpoints=2)
    assert names(run) == ["epoch_0003", "step_000000009"]
    assert (run / "checkpoints" / "LATEST").read_text() == "epoch_0003\n"


def test_an_empty_history_left_by_a_kill_is_started_afresh_not_blanked(tmp_path):
    from tests.helpers.toy import history

    run = tmp_path / "run"
    train(vicreg_model(), PairsOfVectors(64), run, epochs=1)
    (run / "history.csv").write_text("")  # a kill between creating the file and writing its header
    train(vicreg_model(), PairsOfVectors(64), run, epochs=2)
    rows = history(run)
    assert [int(r["step"]) for r in rows] == [5, 6, 7, 8] and all(r["loss"] for r in rows)


def test_a_background_write_holds_the_state_of_its_step_while_training_goes_on(tmp_path, monkeypatch):
    """Each checkpoint written on the thread equals, byte for byte, the one written inline at the
    same step, although the thread writes only after later optimiser steps have run."""
    import threading

    from torch.optim.optimizer import register_optimizer_step_post_hook

    data = PairsOfVectors(64)
    kw = dict(epochs=3, checkpoint_every_steps=2, keep_checkpoints=20)
    inline = train(vicreg_model(), data, tmp_path / "inline", background_checkpoints=False, **kw)
    steps, stepped = [0], threading.Condition()

    def count(*_):
        with stepped:
            steps[0] += 1
            stepped.notify_all()

    write_weights = checkpoint_module.write_weights
    overlapped, threads = [], set()

    def after_two_more_steps(tensors, aliases, path):
        threads.add(threading.current_thread().name)
        with stepped:  # the last checkpoint has no later step: it times out and writes
            start = steps[0]
            overlapped.append(stepped.wait_for(lambda: steps[0] >= start + 2, timeout=2.0))
        write_weights(tensors, aliases, path)

    hook = register_optimizer_step_post_hook(count)
    monkeypatch.setattr(checkpoint_module, "write_weights", after_two_more_steps)
    try:
        background = train(vicreg_model(), data, tmp_path / "background", background_checkpoints=True, **kw)
    finally:
        hook.remove()
    assert threads == {"multivic-checkpoint"}
    assert sum(overlapped) >= 5  # every checkpoint but the last was written after later steps had changed the weights
    assert names(tmp_path / "background") == names(tmp_path / "inline") and len(names(tmp_path / "inline")) == 6
    for name in names(tmp_path / "inline"):
        for f in ("model.safetensors", "optimizer.pt", "rng_0.pt", "trainer.json"):
            got = (tmp_path / "background" / "checkpoints" / name / f).read_bytes()
            assert got == (tmp_path / "inline" / "checkpoints" / name / f).read_bytes(), f"{name}/{f}"
    assert_bitwise_equal(background.model.state_dict(), inline.model.state_dict())


@pytest.mark.parametrize("failing", ["epoch_0002", "epoch_0003"])  # a middle one, and the last (joined at the end)
def test_a_failed_background_write_stops_the_run_and_latest_names_the_last_complete_one(tmp_path, monkeypatch, failing):
    import threading

    run = tmp_path / "run"
    write_weights = checkpoint_module.write_weights
    threads = []

    def disk_full(tensors, aliases, path):
        if path.parent.name == f"{failing}.tmp":
            threads.append(threading.current_thread().name)
            raise OSError(28, "No space left on device")
        write_weights(tensors, aliases, path)

    monkeypatch.setattr(checkpoint_module, "write_weights", disk_full)
    with pytest.raises(
        RunDirError, match=rf"writing checkpoint .*{failing}\.tmp failed .*No space left on device.*resume"
    ) as err:
        train(vicreg_model(), PairsOfVectors(64), run, epochs=3)
    assert "\n" not in str(err.value) and threads == ["multivic-checkpoint"]
    previous = f"epoch_{int(failing[-1]) - 1:04d}"
    assert (run / "checkpoints" / "LATEST").read_text() == previous + "\n"
    monkeypatch.undo()
    assert train(vicreg_model(), PairsOfVectors(64), run, epochs=3).resumed_from == previous
