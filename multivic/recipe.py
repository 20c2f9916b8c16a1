"""The recipe layer: the one place that turns a :class:`RecipeConfig` into components.

Everything below it (loss, branches, data readers, trainer, evaluation) takes explicit
typed arguments and never sees a config object.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch.utils.data import Dataset, default_collate

from multivic.branch import Branch, JointEmbedding, build_branch
from multivic.config import BranchConfig, DataConfig, OptimConfig, RecipeConfig
from multivic.data.audio_folder import LabelledAudio, csv_audio_files, esc50_files
from multivic.data.audio_views import audio_eval_view, audio_train_view
from multivic.data.builtin import builtin_root, write_shapes_dataset, write_sounds_dataset
from multivic.data.builtin.captions import write_captions_dataset
from multivic.data.builtin.location import ensure_written
from multivic.data.coco import read_coco
from multivic.data.paired import CaptionPairs, PairCollate, SidesDataset, TextCollate
from multivic.data.image_folder import ImageFolderDataset, TorchvisionImageDataset
from multivic.data.image_views import image_eval_view, image_train_view
from multivic.data.two_views import TwoViewDataset
from multivic.errors import ConfigError, DataError, MultivicError
from multivic.objectives import VICRegLoss
from multivic.optim import OptimizerSpec
from multivic.registry import create_encoder, encoder_spec, import_modules
from multivic.text.tokenizers import Tokenizer

# The modalities each data format provides, and each modality's training and evaluation views.
DATA_MODALITIES: dict[str, tuple[str, ...]] = {
    "image_folder": ("image",), "cifar10": ("image",), "stl10": ("image",),
    "esc50": ("waveform",), "audio_csv": ("waveform",), "coco": ("image", "text"),
}


def _text_view() -> Callable[[str], str]:
    """Captions go to the collate as they are; tokenising happens per batch."""
    return _identity


def _identity(x: Any) -> Any:
    return x


TRAIN_VIEWS: dict[str, Callable[..., Callable]] = {"image": image_train_view, "waveform": audio_train_view, "text": _text_view}
# Labelled (classification) evaluation exists for image and audio data only.
EVAL_VIEWS: dict[str, Callable[..., Callable]] = {"image": image_eval_view, "waveform": audio_eval_view}
BUILTIN_WRITERS: dict[str, Callable[[Path], Path]] = {
    "shapes": write_shapes_dataset, "sounds": write_sounds_dataset, "captions": write_captions_dataset,
}


def _view_base_args(data: DataConfig, modality: str) -> dict[str, Any]:
    """The data-level arguments of a modality's views (the branch's `view` adds the rest)."""
    if modality == "image":
        return {"image_size": data.image_size}
    if modality == "waveform":
        return {"sample_rate": data.sample_rate, "crop_seconds": data.crop_seconds}
    return {}


def _plain(value: Any) -> Any:
    """An OmegaConf node as plain Python containers."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def branch_configs(cfg: RecipeConfig) -> list[tuple[str, BranchConfig]]:
    """(config key, branch config) of each side; side b's network is a's when shared."""
    return [("model.branch_a", cfg.model.branch_a), ("model.branch_b", cfg.model.branch_b)]


def build_loss(cfg: RecipeConfig) -> VICRegLoss:
    c = cfg.loss
    return VICRegLoss(
        sim_coeff=c.sim_coeff,
        std_coeff=c.std_coeff,
        cov_coeff=c.cov_coeff,
        gamma=c.gamma,
        eps=c.eps,
        variance_convention=c.variance_convention,  # type: ignore[arg-type]
        covariance_form=c.covariance_form,  # type: ignore[arg-type]
    )


def _build_one(key: str, b: BranchConfig, vocab_size: int | None) -> Branch:
    kwargs = _plain(b.encoder_kwargs) or {}
    try:
        spec = encoder_spec(b.encoder)
        # A text encoder's embedding table is sized by the run's tokenizer unless the recipe says.
        if vocab_size is not None and spec.modality == "text" and "vocab_size" not in kwargs:
            if "vocab_size" in inspect.signature(spec.factory).parameters:
                kwargs["vocab_size"] = vocab_size
        return build_branch(b.name, b.encoder, kwargs, b.expander)
    except MultivicError as exc:
        raise type(exc)(f"{key}: {exc}") from None


def check_modalities(cfg: RecipeConfig, modalities: tuple[str, str]) -> None:
    """Each side's modality must be one the data format provides; the error names the branch."""
    given = DATA_MODALITIES[cfg.data.format]
    a = cfg.model.branch_a
    sides = (("model.branch_a", a), ("model.branch_b", a if cfg.model.shared else cfg.model.branch_b))
    for (key, b), modality in zip(sides, modalities):
        if modality not in given:
            raise ConfigError(
                f"{key} ({b.name!r}) reads modality {modality!r} but data.format="
                f"{cfg.data.format!r} gives {' and '.join(map(repr, given))}: pick an encoder of that modality"
            )


def build_model(cfg: RecipeConfig, vocab_size: int | None = None) -> JointEmbedding:
    """The joint-embedding model of the recipe: two branches (one when shared) and the loss.

    ``vocab_size``: the size of the run's tokenizer, given to text encoders that take one.
    """
    import_modules(list(cfg.imports))
    branch_a = _build_one("model.branch_a", cfg.model.branch_a, vocab_size)
    branch_b = branch_a if cfg.model.shared else _build_one("model.branch_b", cfg.model.branch_b, vocab_size)
    check_modalities(cfg, (branch_a.modality, branch_b.modality))
    if "waveform" in DATA_MODALITIES[cfg.data.format]:
        crop = int(round(cfg.data.crop_seconds * cfg.data.sample_rate))
        for key, branch in (("model.branch_a", branch_a), ("model.branch_b", branch_b)):
            need = int(getattr(branch.encoder, "min_input_samples", 1))
            if crop < need:
                raise ConfigError(
                    f"data.crop_seconds={cfg.data.crop_seconds} at {cfg.data.sample_rate} Hz gives {crop} samples, "
                    f"fewer than the {need} that {key} ({branch.name!r}) needs for one window: lengthen the crop"
                )
    try:
        return JointEmbedding(branch_a, branch_b, build_loss(cfg))
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


def resolve_data_root(data: DataConfig) -> Path:
    """The user's data.root, or the built-in data set's folder (written on first use)."""
    if data.root is not None:
        root = Path(data.root).expanduser()
        if not root.exists():
            raise DataError(f"data root {root} does not exist: set data.root=PATH to a folder holding your data set")
        return root
    root = builtin_root(f"{data.builtin}-v1")
    return ensure_written(root, BUILTIN_WRITERS[str(data.builtin)])


def labelled_split(data: DataConfig, root: Path, split: str, transform: Callable | None) -> Dataset:
    """The train or val split of the recipe's data format, items (sample, label)."""
    if data.format == "image_folder":
        return ImageFolderDataset(root / split, transform)
    if data.format in ("esc50", "audio_csv"):
        if data.format == "esc50":
            files, classes = esc50_files(root, split, data.test_fold)
        else:
            files, classes = csv_audio_files(root, data.meta_csv, split, data.test_fold)
        return LabelledAudio(files, classes, data.sample_rate, transform, data.min_seconds)
    return TorchvisionImageDataset(data.format, root, split, transform)


def _view(key: str, modality: str, base: dict[str, Any], kwargs: dict[str, Any]) -> Callable:
    factory = TRAIN_VIEWS[modality]
    accepted = set(inspect.signature(factory).parameters) - set(base)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"unknown {key}.view key(s) {', '.join(unknown)}; {modality} views take: {', '.join(sorted(accepted))}")
    try:
        return factory(**base, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}.view: {exc}") from None


def _modality(b: BranchConfig) -> str:
    spec = encoder_spec(b.encoder)
    if spec.modality:
        return spec.modality
    # An import-path factory: its module declares the modality; build it without memory to ask.
    import torch

    with torch.device("meta"):
        return str(create_encoder(b.encoder, **(_plain(b.encoder_kwargs) or {})).modality)


def side_modalities(cfg: RecipeConfig) -> tuple[str, str]:
    """The modality each side reads."""
    a = _modality(cfg.model.branch_a)
    return a, (a if cfg.model.shared else _modality(cfg.model.branch_b))


def build_train_dataset(cfg: RecipeConfig, root: Path) -> Dataset:
    """Pairs of views of the training split, each side with its own view transform."""
    import_modules(list(cfg.imports))
    modalities = side_modalities(cfg)
    check_modalities(cfg, modalities)
    views = [
        _view(key, modality, _view_base_args(cfg.data, modality), _plain(b.view) or {})
        for (key, b), modality in zip(branch_configs(cfg), modalities)
    ]
    if cfg.data.format == "coco":
        pairs = CaptionPairs(read_coco(root, "train"))
        return SidesDataset(pairs, (modalities[0], views[0]), (modalities[1], views[1]))
    return TwoViewDataset(labelled_split(cfg.data, root, "train", None), views[0], views[1])


def train_captions(cfg: RecipeConfig, train_set: Dataset) -> list[str] | None:
    """All captions of the training set built by :func:`build_train_dataset` when a side reads
    text (to build the vocabulary), else None. Reuses the captions already read from disk."""
    if not isinstance(train_set, SidesDataset) or "text" not in side_modalities(cfg):
        return None
    return train_set.base.coco.flat()[0]


def build_collate(cfg: RecipeConfig, tokenizer: Tokenizer | None) -> Callable | None:
    """The batch collate of the two sides: images and audio stack, captions are tokenised."""
    modalities = side_modalities(cfg)
    if "text" not in modalities:
        return None
    text = TextCollate(tokenizer, cfg.data.max_caption_tokens)
    return PairCollate(*(text if m == "text" else default_collate for m in modalities))


@dataclass
class EvalSplits:
    """Labelled train and val splits with the deterministic evaluation transform."""

    train: Dataset
    val: Dataset
    num_classes: int


def build_eval_splits(cfg: RecipeConfig, root: Path) -> EvalSplits:
    modality = DATA_MODALITIES[cfg.data.format][0]
    transform = EVAL_VIEWS[modality](**_view_base_args(cfg.data, modality))
    train = labelled_split(cfg.data, root, "train", transform)
    val = labelled_split(cfg.data, root, "val", transform)
    return EvalSplits(train, val, len(train.classes))  # type: ignore[attr-defined]


def _optimizer_spec(o: OptimConfig, module: Any, label: str) -> OptimizerSpec:
    return OptimizerSpec(
        name=o.name, module=module, base_lr=o.base_lr, weight_decay=o.weight_decay, momentum=o.momentum,
        betas=tuple(o.betas), warmup_epochs=o.warmup_epochs, final_lr_ratio=o.final_lr_ratio, label=label,
    )


def build_optimizer_specs(cfg: RecipeConfig, model: JointEmbedding) -> list[OptimizerSpec]:
    """One optimiser over the model, or, when a branch has its own `optim`, one per branch."""
    m = cfg.model
    if m.shared or (m.branch_a.optim is None and m.branch_b.optim is None):
        return [_optimizer_spec(cfg.optim, model, "model")]
    return [
        _optimizer_spec(b.optim if b.optim is not None else cfg.optim, branch, branch.name)
        for b, branch in ((m.branch_a, model.branch_a), (m.branch_b, model.branch_b))
    ]
