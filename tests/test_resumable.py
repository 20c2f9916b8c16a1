"""One source of truth for configuration: the trainer's settings come from the recipe schema, and
which keys a resumed run may change is declared on the keys (multivic.options.resumable)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import pytest

from multivic.build import TRAIN_SETTINGS_DATA_KEYS, build_train_settings
from multivic.commands.train import check_run_dir
from multivic.config import DataCommon, EvalConfig, TrainConfig, load_config, resumable_keys, to_yaml
from multivic.data.formats.image_folder import ImageFolderFormat
from multivic.errors import RunDirError
from multivic.modalities.image import ImageModality
from multivic.options import resumable
from multivic.registry import FORMATS, MODALITIES
from multivic.run_dir import RunDir
from multivic.train import TrainSettings

QUICKSTART = "recipes/quickstart/image_image.yaml"
ROOT = "data.root=/data/images"

# The keys a resumed run may change besides eval.*: how long, how it is watched, where the data
# is mounted. (multivic 0.2 kept them as a list of prefixes, whose train.checkpoint_every also
# covered train.checkpoint_every_steps.)
RESUMABLE = {
    "train.epochs",
    "train.log_every",
    "train.checkpoint_every",
    "train.checkpoint_every_steps",
    "train.keep_checkpoints",
    "train.background_checkpoints",
    "train.on_nonfinite",
    "train.max_nonfinite_in_row",
    "train.alarm_min_std",
    "train.alarm_min_rankme_fraction",
    "train.trackers",
    "data.num_workers",
    "data.root",
    "data.strict",
    "data.max_bad_fraction",
}
EVAL_KEYS = {f"eval.{f.name}" for f in dataclasses.fields(EvalConfig)}


def test_the_resumable_keys_are_those_declared_on_the_schema_and_the_format():
    assert resumable_keys(load_config(QUICKSTART, [ROOT])) == RESUMABLE | EVAL_KEYS
    shards = load_config("recipes/coco_retrieval_shards.yaml", [ROOT])
    assert resumable_keys(shards) == RESUMABLE | EVAL_KEYS | {"data.shards", "data.val_shards"}


def _run_dir(tmp_path, overrides: list[str]) -> RunDir:
    """A run directory as `multivic train` leaves it before training: its config.yaml."""
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.config.write_text(to_yaml(load_config(QUICKSTART, [ROOT, *overrides])))
    return run


@pytest.mark.parametrize(
    "override",
    [
        "train.epochs=7",
        "train.checkpoint_every_steps=5",
        "train.alarm_min_std=0.3",
        "data.num_workers=0",
        "data.root=/mnt/images",
        "data.strict=true",
        "eval.knn_k=5",
        "eval.enabled=false",
    ],
)
def test_a_resumable_key_may_change(tmp_path, override):
    check_run_dir(_run_dir(tmp_path, []), load_config(QUICKSTART, [ROOT, override]))


@pytest.mark.parametrize(
    "override,key",
    [
        ("train.batch_size=64", "train.batch_size"),
        ("seed=1", "seed"),
        ("data.image_size=64", "data.image_size"),
        ("optim.base_lr=0.1", "optim.base_lr"),
        ("train.mixed_precision=bf16", "train.mixed_precision"),
    ],
)
def test_any_other_key_is_refused(tmp_path, override, key):
    with pytest.raises(RunDirError, match=rf"was made with {key}=.*this command asks {key}="):
        check_run_dir(_run_dir(tmp_path, []), load_config(QUICKSTART, [ROOT, override]))


@dataclass
class _MountedImage(ImageModality):
    """An image modality with one option a resume may change and one it may not."""

    name = "mounted_image"
    cache_dir: str = resumable("/tmp/cache")
    channels: int = 3


@dataclass
class _MountedFolder(ImageFolderFormat):
    """An image folder format with one option a resume may change and one it may not."""

    name = "mounted_folder"
    modalities = ("mounted_image",)
    builtins = {}  # the built-in data sets stay image_folder's
    mount: str = resumable("local")
    layout: str = "flat"


@pytest.fixture
def plugins() -> Iterator[None]:
    """The plug-ins above, registered for one test."""
    FORMATS.add("mounted_folder", _MountedFolder)
    MODALITIES.add("mounted_image", _MountedImage)
    try:
        yield
    finally:
        FORMATS._entries.pop("mounted_folder")
        MODALITIES._entries.pop("mounted_image")


def test_plugin_options_declare_themselves_resumable(tmp_path, plugins):
    plugin = ["data.format=mounted_folder"]
    declared = {"data.mount", "data.cache_dir"}
    assert resumable_keys(load_config(QUICKSTART, [ROOT, *plugin])) == RESUMABLE | EVAL_KEYS | declared
    run = _run_dir(tmp_path, plugin)
    check_run_dir(run, load_config(QUICKSTART, [ROOT, *plugin, "data.mount=remote", "data.cache_dir=/scratch"]))
    for override in ("data.layout=nested", "data.channels=1"):
        with pytest.raises(RunDirError, match=rf"was made with {override.split('=')[0]}="):
            check_run_dir(run, load_config(QUICKSTART, [ROOT, *plugin, override]))


def test_train_settings_are_the_schema_keys_under_their_own_names():
    names = {f.name for f in dataclasses.fields(TrainSettings)}
    schema = {f.name for f in dataclasses.fields(TrainConfig)} | set(TRAIN_SETTINGS_DATA_KEYS) | {"seed"}
    assert names == schema | {"progress"}  # progress: the command line's --no-progress
    assert all(
        f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        for f in dataclasses.fields(TrainSettings)
    )  # the schema holds the defaults
    cfg = load_config(QUICKSTART, [ROOT, "data.strict=true", "data.num_workers=1", "seed=5", "train.trackers=[]"])
    settings = build_train_settings(cfg, progress=False)
    assert settings.strict and settings.num_workers == 1 and settings.seed == 5 and not settings.progress
    assert settings.epochs == cfg.train.epochs and settings.batch_size == cfg.train.batch_size
    assert settings.trackers == ()


def test_train_settings_without_a_recipe_are_the_schemas_defaults():
    settings = build_train_settings(epochs=3)
    train, data = TrainConfig(), DataCommon()
    assert settings.epochs == 3 and settings.batch_size == train.batch_size
    assert settings.num_workers == data.num_workers and settings.strict == data.strict
    assert settings.max_bad_fraction == data.max_bad_fraction and settings.log_every == train.log_every
    with pytest.raises(TypeError):
        build_train_settings(strict_data=True)  # a name the schema does not have


def test_eval_settings_have_no_defaults_of_their_own_and_take_the_schemas():
    """EvalSettings repeated EvalConfig's defaults (batch 256, k 20, ...): a second source."""
    import dataclasses

    from multivic.build import build_eval_settings
    from multivic.config import EvalConfig, load_config
    from multivic.evaluation.protocols import EvalSettings

    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(EvalSettings))
    settings = build_eval_settings(load_config(None, ["eval.knn_k=7", "data.builtin=shapes"]))
    schema = EvalConfig()
    for f in dataclasses.fields(EvalConfig):
        if f.name in {g.name for g in dataclasses.fields(EvalSettings)} and f.name != "knn_k":
            assert getattr(settings, f.name) == getattr(schema, f.name), f.name
    assert settings.knn_k == 7
