import pytest
import torch

from multivic.config import load_config
from multivic.errors import ConfigError

QUICKSTART = "recipes/quickstart/image_image.yaml"


def test_recipes_load_and_overrides_apply():
    cfg = load_config(QUICKSTART, ["train.epochs=0", "train.batch_size=32", "data.root=/some/where", "seed=3"])
    assert cfg.train.epochs == 0 and cfg.train.batch_size == 32
    assert cfg.data.root == "/some/where" and cfg.seed == 3
    paper = load_config("recipes/image_image.yaml", ["data.root=/x"])
    assert paper.model.branch_a.encoder == "resnet50" and paper.model.branch_a.expander == "8192-8192-8192"
    assert paper.optim.name == "lars" and paper.optim.base_lr == 0.2 and paper.optim.weight_decay == 1e-6


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.epoch=3", r"unknown config key 'train.epoch'"),
        ("trian.epochs=3", r"unknown config key 'trian"),
        ("train.epochs=many", r"config key 'train.epochs'"),
        ("train.batch_size=1", r"train.batch_size must be >= 2"),
        ("train.epochs=-1", r"train.epochs must be >= 0"),
        ("train.mixed_precision=fp8", r"train.mixed_precision='fp8' is not one of: no, bf16, fp16"),
        ("loss.variance_convention=sum", r"loss.variance_convention"),
        ("optim.name=sgd", r"optim.name"),
        ("train.epochs", r"not key=value"),
    ],
)
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(QUICKSTART, [override])
    assert "\n" not in str(info.value)


def test_missing_recipe_and_missing_data():
    with pytest.raises(ConfigError, match="not found"):
        load_config("recipes/nope.yaml")
    with pytest.raises(ConfigError, match="data.root"):
        load_config(None)


def test_data_keys_come_from_the_format_and_its_modalities():
    from multivic.build import build_data

    cfg = load_config("recipes/quickstart/coco_retrieval.yaml", ["data.year=2014", "data.root=/tmp"])
    assert cfg.data.year == 2014 and cfg.data.captions_per_image == 5 and cfg.data.image_size == 32
    data = build_data(cfg)
    assert data.format.year == 2014 and data.modalities["text"].max_caption_tokens == cfg.data.max_caption_tokens
    with pytest.raises(ConfigError, match=r"unknown config key 'data.test_fold': data.format=coco .* takes: .*year"):
        load_config("recipes/quickstart/coco_retrieval.yaml", ["data.test_fold=3"])
    with pytest.raises(ConfigError, match=r"config key 'data.year'"):
        load_config("recipes/quickstart/coco_retrieval.yaml", ["data.year=recent"])
    with pytest.raises(ConfigError, match=r"data.format: unknown data format 'imagefolder'. Did you mean image_folder"):
        load_config(QUICKSTART, ["data.format=imagefolder"])


def test_each_side_gets_its_own_view_also_with_shared_weights(tiny_recipe):
    from torchvision.transforms import v2

    from multivic.build import build_data, build_train_dataset

    cfg = load_config(tiny_recipe, ["model.branch_a.view.solarize_p=0.0", "model.branch_b.view.solarize_p=1.0"])
    assert cfg.model.shared
    pairs = build_train_dataset(cfg, build_data(cfg))
    (_, view_a), (_, view_b) = pairs.side_a, pairs.side_b
    solarize = [[t.p for t in view.transforms if isinstance(t, v2.RandomSolarize)] for view in (view_a, view_b)]
    assert solarize == [[0.0], [1.0]]


def test_a_multivic_0_1_run_config_still_loads(tmp_path):
    """0.1 wrote every data key of one flat DataConfig, whatever the format; such a config.yaml
    loads as a run directory's config (the other formats' keys dropped), not as a new recipe."""
    old = tmp_path / "config.yaml"
    text = open(QUICKSTART).read() + "\n"
    old.write_text(
        text.replace("data:", "data:\n  sample_rate: 16000\n  crop_seconds: 2.0\n  tokenizer: word\n  test_fold: 5", 1)
    )
    with pytest.raises(ConfigError, match=r"unknown config key 'data.(sample_rate|crop_seconds|tokenizer|test_fold)'"):
        load_config(old)
    cfg = load_config(old, legacy=True)
    assert "sample_rate" not in cfg.data and cfg.data.image_size == load_config(QUICKSTART).data.image_size


def test_a_required_plugin_option_is_named(tmp_path):
    from multivic.config import resolve_loss
    from multivic.registry import OBJECTIVES

    class NeedsTemperature(torch.nn.Module):
        def __init__(self, temperature: float, scale: float = 1.0):
            super().__init__()

    OBJECTIVES.add("test_needs_temperature", NeedsTemperature)
    try:
        with pytest.raises(
            ConfigError, match=r"config key 'loss.temperature' is required by objective 'test_needs_temperature'"
        ):
            resolve_loss({"name": "test_needs_temperature"})
        assert resolve_loss({"name": "test_needs_temperature", "temperature": 0.1}) == {
            "name": "test_needs_temperature",
            "temperature": 0.1,
            "scale": 1.0,
        }
    finally:
        OBJECTIVES._entries.pop("test_needs_temperature", None)


def test_unknown_view_keys_list_the_modality_view_keys(tiny_recipe):
    from multivic.build import build_data, build_train_dataset

    cfg = load_config(tiny_recipe, ["model.branch_b.view.blurp=0.5"])
    with pytest.raises(
        ConfigError,
        match=r"unknown model.branch_b.view key\(s\) blurp; image views take: blur_p, blur_sigma, crop_scale",
    ):
        build_train_dataset(cfg, build_data(cfg))
    cfg = load_config(tiny_recipe, ["model.branch_b.view.image_size=8"])  # a data key, not a view key
    with pytest.raises(ConfigError, match=r"unknown model.branch_b.view key\(s\) image_size"):
        build_train_dataset(cfg, build_data(cfg))
