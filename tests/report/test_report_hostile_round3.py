"""Round 3 of hostile inputs (issue 24), `multivic report` on run directories from elsewhere:
settings the figures compute with that are not numbers, eval_arrays of the wrong shape (each was a
traceback or a nonsense figure) and a report/ link out of the run directory (a write into another
folder) are now one-line RunDirErrors that write nothing."""

import pytest
import torch
from safetensors.torch import save_file

from multivic.errors import RunDirError
from multivic.report import read_run, write_report
from tests.helpers.report_runs import history_rows, make_run

CONFIG = {
    "model": {"branch_a": {"name": "img", "encoder": "resnet18", "expander": "64"}},
    "loss": {"name": "vicreg", "gamma": 1.0},
    "train": {"epochs": 3, "batch_size": 8, "alarm_min_std": 0.1},
}


def _run(tmp_path, loss=None, train=None):
    config = {**CONFIG, "loss": {**CONFIG["loss"], **(loss or {})}, "train": {**CONFIG["train"], **(train or {})}}
    return make_run(tmp_path / "run", history_rows(), config=config)


@pytest.mark.parametrize(
    "loss,train",
    [
        ({"gamma": "abc"}, None),  # was: ValueError in float()
        ({"gamma": [1, 2]}, None),  # was: TypeError in float()
        ({"gamma": float("nan")}, None),  # was: matplotlib "Axis limits cannot be NaN or Inf"
        ({"gamma": 10**400}, None),
        (None, {"alarm_min_std": "lots"}),  # was: ValueError in float()
    ],
)
def test_settings_the_figures_use_must_be_finite_numbers(tmp_path, loss, train):
    run = _run(tmp_path, loss, train)
    with pytest.raises(RunDirError, match=r"config.yaml is damaged or was altered \((loss.gamma|train.alarm_min_std)"):
        write_report(run)
    assert not (run / "report").exists()


@pytest.mark.parametrize(
    "arrays",
    [
        {"img/embedding_singular_values": torch.tensor(3.0), "img/embedding_std": torch.tensor(1.0)},  # was: TypeError
        {"img/embedding_singular_values": torch.zeros(0), "img/embedding_std": torch.zeros(0)},  # was: ValueError
        {"img/embedding_singular_values": torch.ones(3, 4)},  # was: a figure of 3 unrelated lines, exit 0
        {"no_branch": torch.ones(4)},
    ],
)
def test_eval_arrays_of_another_shape_are_refused(tmp_path, arrays):
    run = _run(tmp_path)
    save_file(arrays, str(run / "eval_arrays.safetensors"))
    with pytest.raises(RunDirError, match="eval_arrays.safetensors is damaged or was altered"):
        read_run(run)


def test_eval_arrays_of_one_dimension_are_drawn(tmp_path):
    run = _run(tmp_path)
    save_file({"img/embedding_std": torch.ones(8, dtype=torch.float16)}, str(run / "eval_arrays.safetensors"))
    assert read_run(run).arrays["img/embedding_std"].dtype.name == "float64"


def test_a_report_folder_linking_out_of_the_run_is_not_written_through(tmp_path):
    run = _run(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "report").symlink_to(elsewhere)
    with pytest.raises(RunDirError, match="outside the run directory.*--out"):
        write_report(run)
    assert list(elsewhere.iterdir()) == []
    assert write_report(run, tmp_path / "chosen").html.is_file()  # --out: the user's own choice
