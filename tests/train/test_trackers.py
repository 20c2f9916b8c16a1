"""train.trackers: validated before anything is written; TensorBoard receives the history rows."""

import csv

import pytest

from multivic.cli import main
from multivic.errors import ConfigError
from multivic.train.trackers import KNOWN_TRACKERS, check_trackers


def test_unknown_tracker_lists_the_known_ones():
    with pytest.raises(ConfigError, match="tensorboard") as err:
        check_trackers(["tensorbored"])
    assert "tensorbored" in str(err.value) and "\n" not in str(err.value)
    assert "tensorboard" in KNOWN_TRACKERS and "wandb" in KNOWN_TRACKERS


def test_repeated_tracker_is_refused():
    with pytest.raises(ConfigError, match="twice"):
        check_trackers(["tensorboard", "tensorboard"])


def test_uninstalled_tracker_stops_before_the_run_directory_exists(tiny_recipe, tmp_path, capsys):
    pytest.importorskip("tensorboard")
    from accelerate.tracking import get_available_trackers

    missing = sorted(set(KNOWN_TRACKERS) - {str(t) for t in get_available_trackers()})
    if not missing:
        pytest.skip("every tracker package is installed here")
    run = tmp_path / "run"
    assert (
        main(["train", str(tiny_recipe), "--output-dir", str(run), "--no-progress", f"train.trackers=[{missing[0]}]"])
        == 2
    )
    err = capsys.readouterr().err
    assert f"train.trackers names '{missing[0]}'" in err and "install" in err
    assert not run.exists()


@pytest.mark.slow
def test_tensorboard_receives_every_history_row_and_the_final_metrics(tiny_recipe, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(tiny_recipe),
                "--output-dir",
                str(run),
                "--no-progress",
                "train.trackers=[tensorboard]",
                "train.epochs=2",
                "eval.linear_epochs=1",
            ]
        )
        == 0
    )
    with (run / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    events = [p for p in (run / "trackers").rglob("events.out.tfevents.*")]
    assert events, "no TensorBoard event file under RUN_DIR/trackers"
    scalars = {}
    for path in events:
        acc = EventAccumulator(str(path.parent), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, {}).update({e.step: e.value for e in acc.Scalars(tag)})
    assert [int(r["step"]) for r in rows] == sorted(scalars["loss"])
    for r in rows:
        assert scalars["loss"][int(r["step"])] == pytest.approx(float(r["loss"]), rel=1e-6)
        assert scalars["a/std_mean"][int(r["step"])] == pytest.approx(float(r["a/std_mean"]), rel=1e-6)
    final = int(rows[-1]["step"])
    assert final in scalars["eval/tiny/knn_top1"]
