"""Scoring another toolkit's weights: the key mapping against the source modules' own outputs,
the refusals, and the evaluation of a run's exported encoder against ``multivic eval RUN_DIR``."""

import json
import logging

import pytest
import torch
import torchvision
from safetensors.torch import load_file, save_file
from torch import nn

from multivic.cli import main
from multivic.commands.evaluate_backbone import evaluate_backbone
from multivic.config import load_config
from multivic.errors import ConfigError
from multivic.registry import create_encoder
from multivic.weights import WeightsError, load_encoder_weights, load_state_into

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _torchvision_resnet18() -> nn.Module:
    """A torchvision ResNet-18 with non-trivial BN statistics (so a BN left unloaded shows)."""
    torch.manual_seed(1)
    net = torchvision.models.resnet18()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return net.eval()


def _features(net: nn.Module) -> torch.Tensor:
    """torchvision's pooled features: the network without its classifier."""
    head, net.fc = net.fc, nn.Identity()
    try:
        with torch.no_grad():
            return net(X)
    finally:
        net.fc = head


def _encoder(**kwargs) -> nn.Module:
    torch.manual_seed(2)
    return create_encoder("resnet18", **kwargs).eval()


def _encode(enc: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return enc(X)


def test_torchvision_state_dict_gives_torchvisions_features(tmp_path, caplog):
    net = _torchvision_resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    enc = _encoder()
    assert not torch.allclose(_encode(enc), _features(net))
    with caplog.at_level(logging.INFO, logger="multivic"):
        fate = load_encoder_weights(enc, path)
    assert torch.equal(_encode(enc), _features(net))
    assert fate["heads"] == ["fc.weight", "fc.bias"] and not fate["unmatched"] and not fate["missing"]
    assert "left out 2 head weights (fc.weight, fc.bias)" in caplog.text


class _LightlyStyle(nn.Module):
    """lightly's examples: the torchvision trunk as a numbered Sequential, and a projection head."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.backbone = nn.Sequential(*list(resnet.children())[:-1])
        self.projection_head = nn.Sequential(nn.Linear(512, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 32))


def test_lightly_numbered_backbone_gives_its_features(tmp_path):
    model = _LightlyStyle(_torchvision_resnet18()).eval()
    path = tmp_path / "lightly.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    enc = _encoder()
    fate = load_encoder_weights(enc, path)
    with torch.no_grad():
        reference = torch.flatten(model.backbone(X), 1)
    assert torch.equal(_encode(enc), reference)
    assert "backbone.4.0.conv1.weight" in fate["loaded"]  # layer1's first block, by position
    assert all(k.startswith("projection_head.") for k in fate["heads"]) and len(fate["heads"]) == 9  # 2 + 5 (BN) + 2


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {
            "state_dict": {f"module.{k}": v for k, v in sd.items()},
            "epoch": 3,
        },  # DDP in a training checkpoint
        lambda sd: {"model": {f"backbone.{k}": v for k, v in sd.items()}, "optimizer": {}},
        lambda sd: {f"encoder.{k}": v for k, v in sd.items()},
        lambda sd: {"state_dict": {f"model.backbone.{k}": v for k, v in sd.items()}},  # Lightning around lightly
        lambda sd: {f"_orig_mod.model.{k}": v for k, v in sd.items()},  # torch.compile
    ],
    ids=["state_dict+module", "model+backbone", "encoder", "lightning", "compiled"],
)
def test_wrappers_and_prefixes_are_opened(tmp_path, wrap):
    net = _torchvision_resnet18()
    path = tmp_path / "w.pt"
    torch.save(wrap(net.state_dict()), path)
    enc = _encoder()
    load_encoder_weights(enc, path)
    assert torch.equal(_encode(enc), _features(net))


def test_a_timm_checkpoint_gives_timms_features(tmp_path):
    import timm

    torch.manual_seed(4)
    net = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=2, num_classes=10).eval()  # with a head
    path = tmp_path / "timm.pth"
    torch.save({"state_dict": net.state_dict(), "epoch": 9}, path)  # as timm's train.py saves
    torch.manual_seed(5)
    enc = create_encoder("vit_tiny", image_size=32, depth=2).eval()
    fate = load_encoder_weights(enc, path)
    with torch.no_grad():
        reference = net.forward_head(net.forward_features(X), pre_logits=True)
    assert torch.equal(_encode(enc), reference)
    assert fate["heads"] == ["head.weight", "head.bias"]


class _Payload:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


def test_a_pickled_object_is_refused_without_running_its_code(tmp_path):
    armed, marker = tmp_path / "armed", tmp_path / "marker"
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(str(armed))}, tmp_path / "armed.pt")
    torch.save({"conv1.weight": torch.zeros(1), "x": _Payload(str(marker))}, tmp_path / "evil.pt")
    torch.load(tmp_path / "armed.pt", weights_only=False)  # the reference: an unsafe load runs it
    assert armed.read_text() == "ran"

    with pytest.raises(WeightsError) as info:
        load_encoder_weights(_encoder(), tmp_path / "evil.pt")
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message and "pickled Python objects" in message and "state_dict()" in message


def test_damaged_and_unusable_files_are_one_line_errors(tmp_path):
    good = tmp_path / "good.pth"
    torch.save(_torchvision_resnet18().state_dict(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header at all")
    teachers = tmp_path / "dino.pth"
    torch.save({"teacher": {"a": torch.zeros(1)}, "student": {"a": torch.zeros(1)}}, teachers)
    cases = {cut: "damaged", junk: "damaged", tmp_path / "absent.pt": "not found", teachers: "no state dict"}
    for path, words in cases.items():
        with pytest.raises(WeightsError) as info:
            load_encoder_weights(_encoder(), path)
        assert words in str(info.value) and "\n" not in str(info.value), path


def test_missing_and_unmatched_keys_are_refused_with_the_fix_or_skipped_when_not_strict(tmp_path):
    state = _torchvision_resnet18().state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("layer4.")}
    state["extra.weight"] = torch.zeros(3)
    enc = _encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    with pytest.raises(WeightsError) as info:
        load_state_into(enc, state, "w.pth")
    message = str(info.value)
    assert "\n" not in message and "--no-strict" in message and "--encoder-kwargs" in message
    assert "are missing from it (e.g. net.layer4.0.conv1.weight" in message
    assert "1 of its weights match nothing (e.g. extra.weight)" in message
    assert all(torch.equal(v, before[k]) for k, v in enc.state_dict().items())  # nothing loaded

    fate = load_state_into(enc, state, "w.pth", strict=False)
    assert fate["unmatched"] == ["extra.weight"] and fate["missing"][0] == "net.layer4.0.conv1.weight"
    own = enc.state_dict()
    assert torch.equal(own["net.layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])
    assert torch.equal(own["net.layer4.0.conv1.weight"], before["net.layer4.0.conv1.weight"])


def test_a_shape_mismatch_names_the_key_and_both_shapes():
    with pytest.raises(WeightsError) as info:  # torchvision's 7x7 stem into the 32 px 3x3 one
        load_state_into(_encoder(small_stem=True), _torchvision_resnet18().state_dict(), "w.pth")
    message = str(info.value)
    assert "'conv1.weight' has shape [64, 3, 7, 7] but the encoder's 'net.conv1.weight' has [64, 3, 3, 3]" in message
    assert "\n" not in message


def _perturb(path):
    """Move every weight of an export away from any initialisation (BN variances stay positive)."""
    g = torch.Generator().manual_seed(3)
    state = load_file(str(path))
    for k, v in state.items():
        if v.is_floating_point():
            noise = torch.rand(v.shape, generator=g)
            state[k] = v * (0.5 + noise) if k.endswith("running_var") else v + 0.05 * (noise - 0.5)
    save_file(state, str(path))


def test_weights_of_a_run_score_as_multivic_eval_of_the_run(tiny_recipe, tmp_path):
    """A run's exported encoder, given as a weights file (CLI) and as a torchvision-layout state
    dict with a classifier (API), gets the linear probe, k-NN and RankMe of the representation
    that ``multivic eval RUN_DIR`` gives the run."""
    run, common = tmp_path / "run", ["eval.linear_epochs=2"]
    assert main(["train", str(tiny_recipe), "--output-dir", str(run), "--no-progress", "train.epochs=0", *common]) == 0
    export = run / "export" / "tiny.safetensors"
    _perturb(export)  # weights no seed reproduces: only a real load can match
    assert main(["eval", str(run), *common]) == 0
    reference = json.loads((run / "metrics.json").read_text())
    keys = ["tiny/linear_top1", "tiny/linear_top5", "tiny/knn_top1", "tiny/rankme_repr"]

    out = tmp_path / "scores" / "m.json"
    assert (
        main(
            [
                "eval",
                "--recipe",
                str(tiny_recipe),
                "--encoder",
                "resnet18",
                "--weights",
                str(export),
                "--out",
                str(out),
                *common,
            ]
        )
        == 0
    )
    from_cli = json.loads(out.read_text())
    assert {k: from_cli[k] for k in keys} == {k: reference[k] for k in keys}
    # Without an expander the embedding is the representation.
    assert from_cli["tiny/rankme"] == pytest.approx(from_cli["tiny/rankme_repr"], rel=1e-6)

    exported = load_file(str(export))
    torchvision_layout = {k.removeprefix("encoder.net."): v for k, v in exported.items() if k.startswith("encoder.")}
    torchvision_layout |= {"fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    cfg = load_config(tiny_recipe, common)
    from_api = evaluate_backbone(cfg, "resnet18", torchvision_layout, device="cpu", name="tv")
    assert {k: from_api[k.replace("tiny/", "tv/")] for k in keys} == {k: reference[k] for k in keys}
    random_init = evaluate_backbone(cfg, "resnet18", None, device="cpu")
    assert random_init["tiny/rankme_repr"] != reference["tiny/rankme_repr"]


def test_side_b_names_the_metrics_and_gives_the_encoder_arguments(tiny_recipe):
    """On a recipe whose branch b is a ViT-Tiny/8 of depth 6 at 32 px, ``side="b"`` builds that
    ViT (its weights load) and names the metrics after it; side a (a ResNet) gives vit_tiny
    the factory's defaults, which these weights do not fit."""
    from multivic.build import build_data

    torch.manual_seed(6)
    vit = create_encoder("vit_tiny", image_size=32, patch_size=8, depth=6)
    cfg = load_config(
        "recipes/quickstart/r50_vits.yaml", ["eval.linear_epochs=2", "eval.batch_size=64", "data.num_workers=0"]
    )
    data = build_data(load_config(tiny_recipe, ["data.image_size=32"]))  # the tiny image set, not the recipe's
    metrics = evaluate_backbone(cfg, "vit_tiny", vit.state_dict(), side="b", device="cpu", data=data)
    assert {"vit/linear_top1", "vit/knn_top1", "vit/rankme_repr"} <= set(metrics)
    with pytest.raises(WeightsError, match="pos_embed"):
        evaluate_backbone(cfg, "vit_tiny", vit.state_dict(), side="a", device="cpu", data=data)


def test_retrieval_data_is_refused_in_one_line():
    cfg = load_config("recipes/quickstart/coco_retrieval.yaml")
    with pytest.raises(ConfigError) as info:
        evaluate_backbone(cfg, "resnet18", None)
    assert "retrieval" in str(info.value) and "\n" not in str(info.value)


def test_cli_errors_are_one_line(tiny_recipe, tmp_path, capsys):
    weights = tmp_path / "w.pth"
    torch.save(_torchvision_resnet18().state_dict(), weights)
    # torchvision's 7x7 stem asked into the 3x3 one: the error names the key and the shapes.
    assert (
        main(
            [
                "eval",
                "--recipe",
                str(tiny_recipe),
                "--encoder",
                "resnet18",
                "--weights",
                str(weights),
                "--encoder-kwargs",
                "small_stem=true",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "[64, 3, 7, 7]" in err[0]
    assert (
        main(["eval", "--recipe", str(tiny_recipe), "--encoder", "resnet18", "--weights", str(tmp_path / "nope.pt")])
        == 2
    )
    assert "not found" in capsys.readouterr().err
