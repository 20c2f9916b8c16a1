"""The build layer: the one place that turns a validated :class:`RecipeConfig` into components.

Everything below it (objectives, branches, modalities, formats, trainer, evaluation) takes
explicit typed arguments and never sees a config object. Extension points are looked up in
their registries by name; nothing here branches on a modality's or a format's name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import Dataset, default_collate

from multivic.branch import Branch, JointEmbedding, build_branch
from multivic.config import BranchConfig, DataCommon, EvalConfig, OptimConfig, RecipeConfig, TrainConfig
from multivic.data.builtin.location import builtin_root, ensure_written
from multivic.data.formats import DataSetup, PairedViews
from multivic.errors import ConfigError, DataError, MultivicError
from multivic.evaluation.protocols import EvalSettings
from multivic.modalities import Modality, create_modality
from multivic.optim import OptimizerSpec
from multivic.options import options_for
from multivic.registry import (
    FORMATS,
    MODALITIES,
    OBJECTIVES,
    accepted_kwargs,
    create_encoder,
    encoder_modality,
    encoder_spec,
    import_modules,
)
from multivic.train import TrainSettings
from multivic.train.trackers import check_trackers


def plain(value: Any) -> Any:
    """An OmegaConf node as plain Python containers."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def resolve_data_root(data: Any) -> Path:
    """The user's data.root, or the built-in data set's folder (written on first use)."""
    if data.root is not None:
        root = Path(data.root).expanduser()
        if not root.exists():
            raise DataError(f"data root {root} does not exist: set data.root=PATH to a folder holding your data set")
        return root
    writer = FORMATS.get(data.format).factory.builtins[data.builtin]
    return ensure_written(builtin_root(f"{data.builtin}-v1"), writer)


def build_data(cfg: RecipeConfig, root: Path | None = None) -> DataSetup:
    """The data format and its modalities; ``root`` defaults to :func:`resolve_data_root`."""
    import_modules(list(cfg.imports))
    fmt_cls = FORMATS.get(cfg.data.format).factory
    fmt = fmt_cls(root if root is not None else resolve_data_root(cfg.data), **options_for(fmt_cls, plain(cfg.data)))
    return DataSetup(fmt, build_modalities(cfg))


def build_modalities(cfg: RecipeConfig) -> dict[str, Modality]:
    """The modalities the recipe's data format provides, with their ``data.*`` options."""
    values = plain(cfg.data)
    names = FORMATS.get(cfg.data.format).factory.modalities
    return {name: create_modality(name, options_for(MODALITIES.get(name).factory, values)) for name in names}


def _sides(cfg: RecipeConfig) -> list[tuple[str, BranchConfig]]:
    """(config key, branch config) of each side. Side b always brings its own view; when the
    weights are shared, validation has checked that it names a's network."""
    return [("model.branch_a", cfg.model.branch_a), ("model.branch_b", cfg.model.branch_b)]


def _encoder_modality(b: BranchConfig) -> str:
    modality = encoder_modality(b.encoder)
    if modality:
        return modality
    # An import-path factory: its module declares the modality; build it without memory to ask.
    with torch.device("meta"):
        return str(create_encoder(b.encoder, **(plain(b.encoder_kwargs) or {})).modality)


def side_modalities(cfg: RecipeConfig, data: DataSetup) -> tuple[str, str]:
    """The modality each side reads; each must be one the data format provides."""
    out = []
    for key, b in _sides(cfg):
        try:
            modality = _encoder_modality(b)
        except MultivicError as exc:
            raise type(exc)(f"{key}: {exc}") from None
        if modality not in data.modalities:
            given = " and ".join(map(repr, data.modalities))
            raise ConfigError(
                f"{key} ({b.name!r}) reads modality {modality!r} but data.format={data.format.name!r} gives {given}: "
                "pick an encoder of that modality"
            )
        out.append(modality)
    return out[0], out[1]


def fit_modalities(cfg: RecipeConfig, data: DataSetup, state_dir: Callable[[str], Path]) -> None:
    """Give the modalities the sides read their fitted state (a text vocabulary): the one an
    earlier run saved in ``state_dir(modality)``, or one fitted on the training split."""
    for name in sorted(set(side_modalities(cfg, data))):
        modality = data.modalities[name]
        if not modality.needs_fitting:
            continue
        folder = state_dir(name)
        if folder.is_dir():
            modality.load(folder)
        else:
            modality.fit(data.format.corpus(name, data.modalities))


def save_modalities(data: DataSetup, state_dir: Callable[[str], Path]) -> None:
    """Write the fitted modalities' states into ``state_dir(modality)`` unless already there."""
    for name, modality in data.modalities.items():
        if modality.needs_fitting and modality.is_fitted() and not state_dir(name).is_dir():
            modality.save(state_dir(name))


def build_objective(cfg: RecipeConfig) -> nn.Module:
    """The recipe's objective (``loss.name``) with its keyword arguments."""
    loss = plain(cfg.loss)
    return OBJECTIVES.create(loss["name"], **{k: v for k, v in loss.items() if k != "name"})


def _build_branch(key: str, b: BranchConfig, modality: Modality) -> Branch:
    kwargs = plain(b.encoder_kwargs) or {}
    try:
        # A modality's fitted state sizes the encoder (a text vocabulary) unless the recipe says.
        accepted = accepted_kwargs(encoder_spec(b.encoder).factory) or set()
        for k, v in modality.encoder_kwargs().items():
            if k not in kwargs and k in accepted:
                kwargs[k] = v
        branch = build_branch(b.name, b.encoder, kwargs, b.expander)
    except MultivicError as exc:
        raise type(exc)(f"{key}: {exc}") from None
    modality.check_encoder(f"{key} ({b.name!r})", branch.encoder)
    branch.preprocess = modality
    return branch


# What model.branch_*.grad_checkpointing accepts, for its error message.
GRAD_CHECKPOINTING_ENCODERS = (
    "vit_tiny, vit_small, vit_base, most timm:<model>, and encoders with a set_grad_checkpointing(enable) method"
)


def _grad_checkpointing(key: str, b: BranchConfig, branch: Branch) -> None:
    setter = getattr(branch.encoder, "set_grad_checkpointing", None)
    if not callable(setter):
        raise ConfigError(
            f"{key}.grad_checkpointing=true but encoder {b.encoder!r} has no gradient checkpointing; "
            f"encoders that have it: {GRAD_CHECKPOINTING_ENCODERS}"
        )
    try:
        setter(True)
    except ValueError as exc:
        raise ConfigError(
            f"{key}.grad_checkpointing=true: {exc}; encoders that have it: {GRAD_CHECKPOINTING_ENCODERS}"
        ) from None


def build_model(cfg: RecipeConfig, data: DataSetup) -> JointEmbedding:
    """The joint-embedding model of the recipe: two branches (one when shared) and the objective,
    with the speed options of ``model`` applied (gradient checkpointing, channels-last, compile)."""
    mod_a, mod_b = side_modalities(cfg, data)
    branch_a = _build_branch("model.branch_a", cfg.model.branch_a, data.modalities[mod_a])
    branch_b = (
        branch_a if cfg.model.shared else _build_branch("model.branch_b", cfg.model.branch_b, data.modalities[mod_b])
    )
    try:
        model = JointEmbedding(branch_a, branch_b, build_objective(cfg))
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None
    sides = [("model.branch_a", cfg.model.branch_a, branch_a)]
    if not cfg.model.shared:
        sides.append(("model.branch_b", cfg.model.branch_b, branch_b))
    for key, b, branch in sides:
        if b.grad_checkpointing:
            _grad_checkpointing(key, b, branch)
    if cfg.model.channels_last:
        if not any(p.dim() == 4 for _, _, branch in sides for p in branch.parameters()):
            raise ConfigError(
                "model.channels_last=true needs an encoder with 2-D convolutions (4-D weights, e.g. resnet18 or a "
                "ViT's "
                "patch embedding); neither branch has one: set model.channels_last=false"
            )
        for _, _, branch in sides:
            branch.use_channels_last()
    if cfg.model.compile:
        for _, _, branch in sides:
            branch.compile_encoder(cfg.model.compile_mode)
    return model


def _train_view(key: str, modality: Modality, view: dict[str, Any]) -> Callable:
    accepted = modality.view_keys()
    unknown = sorted(set(view) - accepted) if accepted is not None else []
    if unknown:
        raise ConfigError(
            f"unknown {key}.view key(s) {', '.join(unknown)}; {modality.name} views take: "
            f"{', '.join(sorted(accepted or ()))}"
        )
    try:
        return modality.train_view(**view)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}.view: {exc}") from None


def build_train_dataset(cfg: RecipeConfig, data: DataSetup) -> Dataset:
    """Pairs of views of the training split, each side with its own modality and view."""
    sides = [
        (modality, _train_view(key, data.modalities[modality], plain(b.view) or {}))
        for (key, b), modality in zip(_sides(cfg), side_modalities(cfg, data))
    ]
    return PairedViews(data.format.split("train", data.modalities), sides[0], sides[1])


class PairCollate:
    """Batches pairs side by side, each side with its modality's collate (images stack, texts tokenise)."""

    def __init__(self, collate_a: Callable, collate_b: Callable) -> None:
        self.collate_a, self.collate_b = collate_a, collate_b

    def __call__(self, batch: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        return self.collate_a([a for a, _ in batch]), self.collate_b([b for _, b in batch])


def build_collate(cfg: RecipeConfig, data: DataSetup) -> Callable | None:
    """The batch collate of the two sides (None when both stack, PyTorch's default)."""
    collates = [data.modalities[m].collate() for m in side_modalities(cfg, data)]
    if all(c is default_collate for c in collates):
        return None
    return PairCollate(*collates)


def _optimizer_spec(o: OptimConfig, module: Any, label: str) -> OptimizerSpec:
    return OptimizerSpec(
        name=o.name,
        module=module,
        base_lr=o.base_lr,
        weight_decay=o.weight_decay,
        momentum=o.momentum,
        betas=tuple(o.betas),
        warmup_epochs=o.warmup_epochs,
        final_lr_ratio=o.final_lr_ratio,
        label=label,
    )


def build_optimizer_specs(cfg: RecipeConfig, model: JointEmbedding) -> list[OptimizerSpec]:
    """One optimiser over the model, or, when a branch has its own `optim`, one per branch plus
    one (the top-level `optim`) for the objective's own parameters when it has any."""
    m = cfg.model
    if m.shared or (m.branch_a.optim is None and m.branch_b.optim is None):
        return [_optimizer_spec(cfg.optim, model, "model")]  # the objective's parameters included
    specs = [
        _optimizer_spec(b.optim if b.optim is not None else cfg.optim, branch, branch.name)
        for b, branch in ((m.branch_a, model.branch_a), (m.branch_b, model.branch_b))
    ]
    if any(p.requires_grad for p in model.loss_fn.parameters()):
        specs.append(_optimizer_spec(cfg.optim, model.loss_fn, "objective"))
    return specs


# The keys of ``data`` that TrainSettings holds (under the same names), beside every train.* key and seed.
TRAIN_SETTINGS_DATA_KEYS = ("num_workers", "strict", "max_bad_fraction")


def build_train_settings(cfg: RecipeConfig | None = None, progress: bool = True, **overrides: Any) -> TrainSettings:
    """The trainer's settings of a validated recipe: every ``train.*`` key, ``data.num_workers``,
    ``data.strict``, ``data.max_bad_fraction`` and ``seed``, under their own names, with
    ``train.trackers`` checked (installed, known to Accelerate); ``progress`` is the command line's.

    Without ``cfg``, the schema's defaults, so code that calls :func:`multivic.train.fit` itself
    (tests, benchmarks) shares them with the recipes. ``overrides`` replace fields by name
    (``epochs=2, cpu=True``); like a :class:`TrainSettings` made directly, only ``trackers`` is checked.
    """
    train = cfg.train if cfg is not None else TrainConfig()
    data = cfg.data if cfg is not None else DataCommon()
    values: dict[str, Any] = {f.name: getattr(train, f.name) for f in dataclasses.fields(TrainConfig)}
    values.update({key: getattr(data, key) for key in TRAIN_SETTINGS_DATA_KEYS})
    values.update(seed=cfg.seed if cfg is not None else RecipeConfig.seed, progress=progress, **overrides)
    values["trackers"] = check_trackers(values["trackers"])
    return TrainSettings(**values)


def build_eval_settings(cfg: RecipeConfig) -> EvalSettings:
    """The evaluation's settings: every ``eval.*`` key the protocols read, by name, plus the
    data and loss values they need; the schema (EvalConfig) holds the one set of defaults."""
    names = {f.name for f in dataclasses.fields(EvalSettings)}
    values = {key: getattr(cfg.eval, key) for key in names if key in {f.name for f in dataclasses.fields(EvalConfig)}}
    return EvalSettings(
        **values,
        num_workers=cfg.data.num_workers,
        seed=cfg.seed,
        skip_unreadable=not cfg.data.strict,
        gamma=float(cfg.loss.get("gamma", 1.0)),  # objectives without a variance target: the paper's 1
    )
