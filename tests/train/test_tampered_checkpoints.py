"""A run directory's checkpoint state is data written by someone else (issue 24): LATEST is a
regular file holding a checkpoint name (item 5); trainer.json's counters, schedules and world
size are checked against the run being resumed (item 7); damaged files are one-line errors, not
tracebacks (item 8); a FIFO where a file is expected is refused without hanging (item 9)."""

import json
import logging
import os

import pytest

from multivic.errors import RunDirError
from tests.helpers.hostile import Fifo
from tests.helpers.toy import PairsOfVectors, history, train, vicreg_model

SECRET = "TOPSECRET-CONTENT-OF-ANOTHER-FILE"


def _resume(run, **kw):
    return train(vicreg_model(), PairsOfVectors(64), run, **{"epochs": 2, **kw})


def _edit_trainer(run, edit, name="epoch_0001"):
    path = run / "checkpoints" / name / "trainer.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    return path


# --- item 5: LATEST ------------------------------------------------------------------------------


def test_a_symlinked_latest_never_shows_its_target(run, tmp_path, caplog):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    latest = run / "checkpoints" / "LATEST"
    latest.unlink()
    latest.symlink_to(secret)
    with caplog.at_level(logging.WARNING, logger="multivic"):
        result = _resume(run)
    assert SECRET not in caplog.text
    assert "symbolic link" in caplog.text and result.resumed_from == "epoch_0001"


@pytest.mark.parametrize("content", ["\x1b]0;owned\x07epoch_0001", "../../../etc/passwd", "x" * 100_000])
def test_latest_content_that_is_not_a_checkpoint_name_is_never_shown(run, caplog, content):
    (run / "checkpoints" / "LATEST").write_text(content)
    with caplog.at_level(logging.WARNING, logger="multivic"):
        result = _resume(run)
    assert result.resumed_from == "epoch_0001"
    assert "\x1b" not in caplog.text and "passwd" not in caplog.text and "xxxxxxxxxx" not in caplog.text
    assert "does not hold a checkpoint folder name" in caplog.text or "too large" in caplog.text


def test_a_fifo_as_latest_is_refused_without_hanging(run, caplog):
    latest = run / "checkpoints" / "LATEST"
    latest.unlink()
    fifo = Fifo(latest)
    with caplog.at_level(logging.WARNING, logger="multivic"):
        result = _resume(run)
    assert not fifo.close(), "reading LATEST blocked on a FIFO"
    assert result.resumed_from == "epoch_0001"


# --- item 7: trainer.json checked against the run --------------------------------------------------


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (lambda m: m["state"].update(epoch=10**6), r"says 1000000 epochs are done, more than train.epochs=2"),
        (
            lambda m: [s.update(base_lrs=[1e6]) for s in m["schedules"]],
            r"base learning rate 1e\+06 .* the recipe gives",
        ),
        (
            lambda m: (m["state"].update(steps_in_epoch=9, step=13), [s.update(last_epoch=13) for s in m["schedules"]]),
            r"says 9 steps of the epoch are done, an epoch has 4",
        ),
        (lambda m: m.update(world_size=8), r"written by 8 processes, this run has 1"),
        (lambda m: [s.update(last_epoch=40) for s in m["schedules"]], r"schedule 0 at step 40, its counters at step 4"),
    ],
)
def test_tampered_counters_and_schedules_are_refused(run, edit, pattern):
    _edit_trainer(run, edit)
    with pytest.raises(RunDirError, match=pattern) as err:
        _resume(run)
    assert "\n" not in str(err.value) and "trainer.json" in str(err.value) or "processes" in str(err.value)


def test_a_huge_learning_rate_in_the_optimizer_state_is_refused(run):
    import torch

    path = run / "checkpoints" / "epoch_0001" / "optimizer.pt"
    state = torch.load(path, weights_only=True)
    for part in state["parts"]:
        for group in part["param_groups"]:
            group["lr"] = 1e6
    torch.save(state, path)
    with pytest.raises(RunDirError, match=r"optimizer.pt has learning rate 1000000.0"):
        _resume(run)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["state"].update(epoch="one"),
        lambda m: m["state"].update(step=-5),
        lambda m: m["state"].update(surprise=1),
        lambda m: m.update(schedules={"not": "a list"}),
        lambda m: m.update(state=[1, 2]),
        lambda m: [s.update(base_lrs=[float("nan")]) for s in m["schedules"]],
    ],
)
def test_a_malformed_trainer_json_is_a_one_line_error_naming_it(run, edit):
    path = _edit_trainer(run, edit)
    with pytest.raises(RunDirError) as err:
        _resume(run)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_trainer_json_that_is_not_json_is_a_one_line_error(run):
    path = run / "checkpoints" / "epoch_0001" / "trainer.json"
    path.write_bytes(b"\xff\xfe{{{")
    with pytest.raises(RunDirError, match="trainer.json is damaged") as err:
        _resume(run)
    assert "\n" not in str(err.value)


def test_the_untampered_run_still_resumes(run):
    result = _resume(run)
    assert result.resumed_from == "epoch_0001" and result.step == 8


# --- items 8 and 9: history.csv, FIFOs ----------------------------------------------------------


def test_a_damaged_history_row_is_left_out_with_a_warning(run, caplog):
    columns = (run / "history.csv").read_text().splitlines()[0].count(",") + 1
    with (run / "history.csv").open("a") as f:
        f.write("not-a-step,0,0.1\n")
        f.write(",".join(["2"] * (columns + 5)) + "\n")  # more cells than columns
    with caplog.at_level(logging.WARNING, logger="multivic"):
        _resume(run)
    assert "left out 2 damaged rows" in caplog.text
    assert [int(r["step"]) for r in history(run)] == list(range(1, 9))


def test_a_history_that_is_not_text_is_a_one_line_error(run):
    (run / "history.csv").write_bytes(b"step,epoch\n1,\xff\xfe0\n")
    with pytest.raises(RunDirError, match="history.csv is damaged"):
        _resume(run)


@pytest.mark.parametrize(
    "name",
    [
        "history.csv",
        "checkpoints/epoch_0001/trainer.json",
        "checkpoints/epoch_0001/model.safetensors",
        "checkpoints/epoch_0001/optimizer.pt",
    ],
)
def test_a_fifo_in_the_run_directory_is_refused_without_hanging(run, name):
    path = run / name
    path.unlink()
    fifo = Fifo(path)
    with pytest.raises(RunDirError, match=r"FIFO") as err:
        _resume(run)
    assert not fifo.close(), f"reading {name} blocked on a FIFO"
    assert "\n" not in str(err.value)
    os.unlink(path)
