import pytest

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
