"""Round 3 of hostile inputs (issue 24), symbolic links in a run directory from elsewhere: a
config.yaml, metrics.json, history.csv or eval_arrays.safetensors linking to a file outside the
run was read and shown (`multivic compare` printed another file's values); a checkpoints/ or
export/ linking outside made `multivic train` write there and delete its *.tmp folders. Reads
are now refused, and so is taking the run directory's lock, before anything is written."""

import json

import pytest
import torch
import yaml
from safetensors.torch import save_file

from multivic.commands.compare import compare_runs
from multivic.errors import RunDirError
from multivic.run_dir import RunDir

SECRET = "TOPSECRET-VALUE"


def _run(root):
    root.mkdir(parents=True)
    (root / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "loss": {"name": "vicreg"}}))
    (root / "metrics.json").write_text(json.dumps({"a/knn_top1": 1.0}))
    (root / "history.csv").write_text("step,loss\n1,2.0\n")
    return root


@pytest.fixture
def elsewhere(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "creds.yaml").write_text(yaml.safe_dump({"password": SECRET}))
    (folder / "m.json").write_text(json.dumps({SECRET: 1.0}))
    (folder / "h.csv").write_text(f"step,{SECRET}\n1,2\n")
    save_file({"a/embedding_std": torch.ones(3)}, str(folder / "arrays.safetensors"))
    return folder


@pytest.mark.parametrize(
    "name,target",
    [("config.yaml", "creds.yaml"), ("metrics.json", "m.json"), ("history.csv", "h.csv")],
)
def test_run_files_linking_outside_are_not_read(tmp_path, elsewhere, name, target):
    run = _run(tmp_path / "run")
    (run / name).unlink()
    (run / name).symlink_to(elsewhere / target)
    other = _run(tmp_path / "other")
    with pytest.raises(RunDirError, match=f"{name} leads outside"):
        if name == "history.csv":
            RunDir(run).read_history_text()
        else:
            compare_runs([run, other])  # was: the table showed TOPSECRET-VALUE, exit 0


def test_eval_arrays_linking_outside_are_not_read(tmp_path, elsewhere):
    run = _run(tmp_path / "run")
    (run / "eval_arrays.safetensors").symlink_to(elsewhere / "arrays.safetensors")
    with pytest.raises(RunDirError, match="eval_arrays.safetensors leads outside"):
        RunDir(run).read_eval_arrays()


def test_links_inside_the_run_still_read(tmp_path):
    run = _run(tmp_path / "run")
    (run / "kept.yaml").write_text((run / "config.yaml").read_text())
    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to("kept.yaml")
    assert RunDir(run).read_config_data()["seed"] == 0


@pytest.mark.parametrize("entry", ["checkpoints", "export", "report", "checkpoints/epoch_0001.tmp", "modalities/text"])
def test_the_lock_refuses_a_run_whose_written_entries_link_outside(tmp_path, elsewhere, entry):
    run = _run(tmp_path / "run")
    precious = elsewhere / "important.tmp"
    precious.mkdir()
    (run / entry).parent.mkdir(parents=True, exist_ok=True)
    (run / entry).symlink_to(elsewhere)
    with pytest.raises(RunDirError, match=f"{entry} is a symbolic link to .*outside the run directory"):
        with RunDir(run).lock("multivic train"):
            pytest.fail("the lock was taken")  # was: train wrote into it and deleted important.tmp
    assert precious.is_dir() and not (run / ".lock").exists()


def test_the_lock_takes_a_run_without_links_out(tmp_path):
    run = _run(tmp_path / "run")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "inside").symlink_to(run / "export", target_is_directory=True)
    with RunDir(run).lock("multivic eval"):
        assert (run / ".lock").exists()
