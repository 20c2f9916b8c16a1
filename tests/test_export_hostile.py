"""An export (export/<branch>.json + .safetensors) is data from elsewhere (issue 24): weights
must be finite before evaluation, embedding and export (item 7); the json's sizes are bounded
(item 7); damage is a one-line error naming the file (item 8); a FIFO is refused without hanging
(item 9). metrics.json is always standard JSON (item 7)."""

import json
import logging
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from multivic.branch import build_branch
from multivic.cli import main
from multivic.errors import MultivicError, RunDirError
from multivic.export import export_branch, load_branch
from multivic.modalities import create_modality
from multivic.run_dir import RunDir
from tests.helpers.hostile import Fifo


@pytest.fixture
def export(tmp_path):
    """An export folder of one small image branch (resnet18, expander 32-32, 32-px images)."""
    branch = build_branch("img", "resnet18", {}, "32-32")
    branch.preprocess = create_modality("image", {"image_size": 32})
    export_branch(branch, tmp_path / "export", "resnet18", {})
    return tmp_path / "export"


def _edit_json(export, edit):
    path = export / "img.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    return path


def test_the_export_loads(export):
    assert load_branch(export, "img").preprocess.image_size == 32


def test_nan_weights_are_refused_before_evaluation_or_embedding(export, tmp_path, tiny_images, capsys):
    path = export / "img.safetensors"
    state = load_file(str(path))
    state["expander.0.weight"][0, 0] = float("nan")
    save_file(state, str(path))
    with pytest.raises(
        RunDirError, match=r"img.safetensors holds NaN or infinite weights \(1 of the .* 'expander.0.weight'\)"
    ):
        load_branch(export, "img")
    out = tmp_path / "emb.npy"
    assert main(["embed", str(export), "--branch", "img", "--input", str(tiny_images / "val"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "NaN" in err and "\n" not in err
    assert not out.exists()


def test_non_finite_trained_weights_are_not_exported(tmp_path):
    branch = build_branch("img", "resnet18", {}, "32-32")
    with torch.no_grad():
        branch.expander[0].weight[0, 0] = float("inf")
    with pytest.raises(MultivicError, match=r"weights of branch 'img' hold NaN or infinite values .* not exported"):
        export_branch(branch, tmp_path / "export", "resnet18", {})
    assert not (tmp_path / "export" / "img.json").exists()


@pytest.mark.parametrize(
    "edit,pattern",
    [
        (
            lambda m: m["preprocess"]["options"].update(image_size=10**6),
            r"preprocessing options image does not accept \(image_size must be at most 8192",
        ),
        (lambda m: m["preprocess"]["options"].update(image_size=float("inf")), r"image_size is inf"),
        (lambda m: m.update(expander="1000000000-1000000000"), r"expander asks for 2 layers up to 1000000000 wide"),
        (lambda m: m["encoder_kwargs"].update(width=10**12), r"encoder_kwargs.width is 1000000000000"),
    ],
)
def test_sizes_an_export_asks_for_are_bounded(export, edit, pattern):
    path = _edit_json(export, edit)
    with pytest.raises(RunDirError, match=pattern) as err:
        load_branch(export, "img")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(encoder_kwargs=["a", "list"]),
        lambda m: m.update(expander={"not": "a spec"}),
        lambda m: m.pop("encoder"),
        lambda m: m.update(preprocess="image"),
        lambda m: m.update(expander="64-64"),  # does not match the weights
        lambda m: m["preprocess"]["options"].update(image_size=4),  # the modality's own check
        lambda m: m["encoder_kwargs"].update(no_such_argument=1),  # the encoder's own refusal
    ],
)
def test_a_damaged_export_json_is_a_one_line_error_naming_it(export, edit):
    path = _edit_json(export, edit)
    with pytest.raises(RunDirError) as err:
        load_branch(export, "img")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("damage", [b"", b"\x00" * 100, b"not safetensors at all"])
def test_damaged_export_weights_are_a_one_line_error(export, damage):
    path = export / "img.safetensors"
    path.write_bytes(damage if damage else path.read_bytes()[:200])
    with pytest.raises(RunDirError, match=r"img.safetensors is damaged") as err:
        load_branch(export, "img")
    assert "\n" not in str(err.value)


def test_a_fifo_as_the_export_json_is_refused_without_hanging(export):
    (export / "img.json").unlink()
    fifo = Fifo(export / "img.json")
    with pytest.raises(RunDirError, match="FIFO"):
        load_branch(export, "img")
    assert not fifo.close(), "reading the export json blocked on a FIFO"


def test_metrics_json_is_standard_json_with_non_finite_values_as_null(tmp_path, caplog):
    run = RunDir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="multivic"):
        run.write_metrics({"img/knn_top1": float("nan"), "img/rankme": float("inf"), "img/linear_top1": 41.5})

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    metrics = json.loads(run.metrics.read_text(), parse_constant=refuse)
    assert metrics == {"img/knn_top1": None, "img/rankme": None, "img/linear_top1": 41.5}
    assert "img/knn_top1" in caplog.text and "null" in caplog.text
    back = run.read_metrics()  # read back as NaN, a number like the others
    assert math.isnan(back["img/knn_top1"]) and back["img/linear_top1"] == 41.5


def test_an_encoders_weights_file_with_nan_or_a_fifo_is_refused(tmp_path):
    """`multivic eval --weights FILE`: another toolkit's file is data too."""
    from multivic.registry import create_encoder
    from multivic.weights import WeightsError, load_encoder_weights

    encoder = create_encoder("resnet18")
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    state["net.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(WeightsError, match=r"'net.conv1.weight' holds NaN or infinite values"):
        load_encoder_weights(encoder, tmp_path / "nan.pt")
    fifo = Fifo(tmp_path / "fifo.pt")
    with pytest.raises(WeightsError, match="FIFO"):
        load_encoder_weights(encoder, tmp_path / "fifo.pt")
    assert not fifo.close()
