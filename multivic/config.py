"""Typed recipe configuration: OmegaConf structured configs over dataclasses.

A recipe is a YAML file whose keys must exist in :class:`RecipeConfig`; command-line
overrides are ``key=value`` dotlists merged on top. An unknown key or a value of the wrong
type is a :class:`ConfigError` naming the key. This module only describes and validates: the
build layer (:mod:`multivic.build`) turns a config into components.

Two sections are open-ended because plug-ins define their keys: ``loss`` holds ``name`` (an
objective of the registry) and that objective's keyword arguments; ``data`` holds the common
keys below plus the options of the data format and of each modality it provides (dataclass
fields, e.g. ``data.test_fold`` of esc50 and ``data.sample_rate`` of the waveform modality).
Both are checked and typed against those signatures, and filled with their defaults, when the
recipe is loaded, so ``config.yaml`` in a run directory shows every value the run used.

A key that may change when a run is resumed is declared so on its field, with
:func:`multivic.options.resumable` (e.g. ``train.epochs``; a format's option such as
``data.shards`` the same way); :func:`resumable_keys` collects them.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from multivic.errors import ConfigError, MultivicError
from multivic.files import leads_outside
from multivic.options import is_resumable, option_fields, options_for, resumable
from multivic.registry import FORMATS, MODALITIES, OBJECTIVES, import_modules

MIXED_PRECISION = ("no", "bf16", "fp16")
OPTIMIZERS = ("lars", "adamw")
NONFINITE_POLICIES = ("stop", "skip")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class OptimConfig:
    name: str = "lars"
    # Learning rate per 256 samples of global batch: lr = base_lr × batch_size / 256.
    base_lr: float = 0.2
    weight_decay: float = 1e-6
    momentum: float = 0.9
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_epochs: float = 10.0
    # The cosine decays to base lr × final_lr_ratio, as the released code's end_lr.
    final_lr_ratio: float = 0.001


@dataclass
class BranchConfig:
    """One side of the joint embedding: its network and its input pipeline."""

    name: str = "image"
    encoder: str = "resnet50"
    encoder_kwargs: dict[str, Any] = field(default_factory=dict)
    expander: str = "8192-8192-8192"
    # Keyword arguments of the modality's training view (for images: crop_scale, blur_p, ...).
    view: dict[str, Any] = field(default_factory=dict)
    # This branch's own optimiser (e.g. AdamW for a ViT beside LARS for a ResNet); null: the
    # top-level `optim`. Only with model.shared=false.
    optim: Optional[OptimConfig] = None
    # Recompute the encoder's blocks in the backward pass instead of keeping their activations:
    # less memory, about a third more encoder compute. For encoders that have it (the ViTs,
    # most timm:<model>, any encoder with a set_grad_checkpointing(enable) method). Training
    # only: exports do not record it.
    grad_checkpointing: bool = False


@dataclass
class ModelConfig:
    # shared: one network on both sides; branch_b then only contributes its `view`.
    shared: bool = True
    # Views start empty (a YAML `view` merges into this default): recipes state them.
    branch_a: BranchConfig = field(default_factory=BranchConfig)
    branch_b: BranchConfig = field(default_factory=BranchConfig)
    # Image encoders' weights and 4-D inputs in torch.channels_last (NHWC): faster convolutions
    # on recent GPUs, mostly with mixed precision. Needs an encoder with 2-D convolutions.
    channels_last: bool = False
    # torch.compile each branch's encoder (the expander and loss stay eager). The first step
    # pays the compile time (minutes on a CPU with a cold cache: benchmarks/compile.py measures
    # it), and again when the batch shape or train/eval mode changes; on CPUs the compiled steps
    # were not faster. State-dict keys and exports are
    # the same as without. Needs a C++ compiler on the CPU and Triton on GPUs.
    compile: bool = False
    # torch.compile's mode with model.compile=true: default, reduce-overhead (CUDA graphs),
    # max-autotune, max-autotune-no-cudagraphs.
    compile_mode: str = "default"


@dataclass
class DataCommon:
    """The keys of ``data`` every format shares; formats and modalities add their options."""

    # The registered data format of data.root: image_folder, cifar10, stl10, esc50, audio_csv,
    # coco, or one a plug-in registers (`multivic plugins` lists them).
    format: str = "image_folder"
    # Folder of the user's data. Empty: the built-in data set named by `builtin` is used.
    root: Optional[str] = resumable(None)
    builtin: Optional[str] = None
    num_workers: int = resumable(4)
    # An unreadable sample (corrupt image, empty audio file, bad caption) is replaced by the next
    # readable one, counted in history.csv (bad_samples) and warned about with its path;
    # strict=true stops the run on the first one instead.
    strict: bool = resumable(False)
    # More than this fraction of the training split unreadable in one epoch stops the run.
    max_bad_fraction: float = resumable(0.01)


@dataclass
class TrainConfig:
    """The ``train`` section; :class:`multivic.train.TrainSettings` holds these keys under the same names."""

    # A resumed run continues up to this many epochs.
    epochs: int = resumable(100)
    # Global batch: rows the variance and covariance terms see, over all processes.
    batch_size: int = 2048
    grad_accum_steps: int = 1
    mixed_precision: str = "no"
    log_every: int = resumable(10)
    # A checkpoint every this many epochs (and after the last one) ...
    checkpoint_every: int = resumable(1)
    # ... and every this many optimiser steps (0: off); a run resumes at the exact batch.
    checkpoint_every_steps: int = resumable(0)
    # How many of the newest checkpoints to keep in the run directory.
    keep_checkpoints: int = resumable(1)
    # Write checkpoints on a thread while training goes on (false: each checkpoint stalls the step).
    background_checkpoints: bool = resumable(True)
    # A non-finite loss or gradient: "stop" with a message naming the term, branch and step
    # (the last checkpoint stays), or "skip" the step, count it in history.csv and stop after
    # max_nonfinite_in_row skipped steps in a row.
    on_nonfinite: str = resumable("stop")
    max_nonfinite_in_row: int = resumable(10)
    # Clip the global gradient norm to this value before each optimiser step (null: no clipping).
    clip_grad_norm: Optional[float] = None
    # Collapse alarm on logged steps: a side's per-dimension std (mean) under alarm_min_std, or
    # its RankMe under alarm_min_rankme_fraction × min(rows, width) of the batch, is flagged.
    alarm_min_std: float = resumable(0.1)
    alarm_min_rankme_fraction: float = resumable(0.01)
    # Batch norm over the global batch on several GPUs (as released); no effect on one process or CPU.
    sync_batchnorm: bool = True
    # Train on the CPU even when a GPU is present.
    cpu: bool = False
    # Accelerate trackers that also receive the history rows and final metrics: tensorboard,
    # wandb, mlflow, aim, comet_ml, clearml, dvclive, ... (their package must be installed).
    # Empty: history.csv only, and nothing is sent anywhere.
    trackers: list[str] = resumable(default_factory=list)


@dataclass
class EvalConfig:
    enabled: bool = True
    batch_size: int = 256
    knn_k: int = 20
    knn_temperature: float = 0.07
    linear_epochs: int = 100
    linear_lr: float = 0.01
    linear_weight_decay: float = 1e-4
    # Cap on training-split samples embedded for the probes (None: all), to bound time on big sets.
    max_train_samples: Optional[int] = None
    # Fold-based data (esc50, audio_csv): also run the probes with each of folds 1-5 held out in
    # turn and report their means as <branch>/linear_top1_cv5 and <branch>/knn_top1_cv5.
    cross_validate: bool = False
    # Image-text retrieval ranks by the cosine of the expander outputs ("embedding", the shared
    # space the loss trains) or of the encoder outputs ("representation", when widths match).
    retrieval_space: str = "embedding"


@dataclass
class RecipeConfig:
    seed: int = 0
    # Python modules (names on sys.path, or .py files relative to the recipe) imported before the
    # branches are built, so encoders they register with @register_encoder can be named.
    imports: list[str] = field(default_factory=list)
    model: ModelConfig = field(default_factory=ModelConfig)
    # {name: <objective>, ...its keyword arguments}; without a name, vicreg.
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "vicreg"})
    # DataCommon's keys plus the format's and its modalities' options.
    data: dict[str, Any] = field(default_factory=lambda: {"format": "image_folder"})
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # Evaluation reads the trained weights: a resumed run may evaluate differently.
    eval: EvalConfig = resumable(default_factory=EvalConfig)


def schema_keys(cls: type = RecipeConfig, prefix: str = "") -> list[str]:
    """The dotted keys the schema declares (``loss`` and ``data`` as sections: their keys come from
    the plug-ins)."""
    keys = []
    for f in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls).get(f.name)
        key = f"{prefix}{f.name}"
        keys += schema_keys(hint, key + ".") if dataclasses.is_dataclass(hint) else [key]
    return keys


def near_miss(key: str, known: list[str]) -> str:
    """`` (did you mean X?)`` for the known key closest to a misspelt ``key``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _one_line(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    if exc.__class__.__name__ == "ConfigKeyError" and key:
        known = schema_keys() + [f.name for f in dataclasses.fields(RecipeConfig)]
        return f"unknown config key {key!r}{near_miss(str(key), known)}: multivic config RECIPE lists every key"
    return f"config key {key!r}: {first}" if key else first


def _yaml_error(path: Path, exc: BaseException) -> str:
    """A YAML syntax error as ``file:line:column: problem``, the position editors jump to."""
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{path}:{mark.line + 1}:{mark.column + 1}: {exc.problem}: fix the YAML there"
    return f"cannot read recipe {path}: {str(exc).splitlines()[0]}"


def load_config(recipe: str | Path | None, overrides: list[str] | None = None, legacy: bool = False) -> RecipeConfig:
    """Read a recipe YAML (or only defaults when None), apply ``key=value`` overrides, validate.

    ``legacy``: the recipe is a run directory's config.yaml, possibly written by multivic 0.1.
    """
    schema = OmegaConf.structured(RecipeConfig)
    try:
        layers: list[Any] = [schema]
        if recipe is not None:
            path = Path(recipe)
            if not path.is_file():
                raise ConfigError(
                    f"recipe {path} not found: give the path of a YAML recipe, e.g. recipes/quickstart/image_image.yaml"
                )
            if legacy and leads_outside(path, path.parent):  # a run's config.yaml linking elsewhere: not read
                raise ConfigError(
                    f"{path} leads outside {path.parent} (a symbolic link): a run directory's config.yaml lives "
                    "inside it; replace the link by the run's own config"
                )
            loaded = OmegaConf.load(path)
            if not isinstance(loaded, DictConfig):
                raise ConfigError(f"recipe {path} is not a YAML mapping of config keys")
            layers.append(loaded)
        for item in overrides or []:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not key=value (e.g. train.epochs=5)")
        if overrides:
            layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(*layers)
    except OmegaConfBaseException as exc:
        raise ConfigError(_one_line(exc)) from None
    except ConfigError:
        raise
    except Exception as exc:  # YAML syntax errors and the like
        raise ConfigError(_yaml_error(Path(str(recipe)), exc)) from None
    cfg: RecipeConfig = merged  # type: ignore[assignment]  # a DictConfig typed by the schema
    if recipe is not None:
        # .py imports are relative to the recipe; stored absolute so the run dir stays usable.
        base = Path(recipe).resolve().parent
        cfg.imports = [
            str((base / m).resolve()) if m.endswith(".py") and not Path(m).is_absolute() else m for m in cfg.imports
        ]
    import_modules(list(cfg.imports))  # plug-ins of the recipe register before their keys are checked
    cfg.loss = resolve_loss(OmegaConf.to_container(cfg.loss, resolve=True))  # type: ignore[arg-type]
    cfg.data = resolve_data(OmegaConf.to_container(cfg.data, resolve=True), legacy)  # type: ignore[arg-type]
    validate(cfg)
    return cfg


# OmegaConf types these; any other annotation (Literal, a class) is checked by the plug-in itself.
_PLAIN_TYPES = (int, float, bool, str)


def _option_type(hint: Any) -> Any:
    """The type OmegaConf checks an option against: plain types and Optional of them; Any else."""
    if hint in _PLAIN_TYPES:
        return hint
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 and args[0] in _PLAIN_TYPES:
        return Optional[args[0]]
    return Any


# The default of an option that has none: the user must set it.
REQUIRED = object()


def _typed_section(
    section: str, fields: list[tuple[str, Any, Any]], given: dict[str, Any], whose: str
) -> dict[str, Any]:
    """``given`` checked against ``fields`` (name, type hint, default or REQUIRED), with the
    defaults filled in."""
    schema = dataclasses.make_dataclass(
        section,
        [
            (n, _option_type(t), field(default_factory=lambda d=d: MISSING if d is REQUIRED else d))
            for n, t, d in fields
        ],
    )
    unknown = sorted(set(given) - {n for n, _, _ in fields})
    if unknown:
        names = sorted(n for n, _, _ in fields)
        hint = near_miss(unknown[0], names).replace("did you mean ", f"did you mean {section}.")
        raise ConfigError(f"unknown config key '{section}.{unknown[0]}'{hint}: {whose} takes: {', '.join(names)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), given)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"config key '{section}.{getattr(exc, 'key', '?')}': {str(exc).splitlines()[0]}") from None
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(
            f"config key '{section}.{missing[0]}' is required by {whose}: set it in the recipe or as "
            f"{section}.{missing[0]}=..."
        )
    return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]


def dataclass_fields(cls: type, every_field: bool = False) -> list[tuple[str, Any, Any]]:
    """(name, type, default) of a plug-in's options, or of every field of ``cls``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls) if every_field else option_fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = REQUIRED
        out.append((f.name, hints.get(f.name, Any), default))
    return out


def signature_fields(factory: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    init = factory.__init__ if inspect.isclass(factory) else factory  # type: ignore[misc]
    hints = typing.get_type_hints(init)
    return [
        (p.name, hints.get(p.name, Any), REQUIRED if p.default is p.empty else p.default)
        for p in inspect.signature(factory).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def resolve_loss(loss: dict[str, Any]) -> dict[str, Any]:
    """``loss`` with its objective's name and every keyword argument, checked and typed."""
    name = str(loss.get("name") or "vicreg")
    try:
        entry = OBJECTIVES.get(name)
    except MultivicError as exc:
        raise ConfigError(f"loss.name: {exc}") from None
    given = {k: v for k, v in loss.items() if k != "name"}
    resolved = _typed_section("loss", signature_fields(entry.factory), given, f"objective {name!r}")
    try:  # the objective's own checks of its values; its messages start with the argument's name
        entry.factory(**resolved)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"loss.{exc}") from None
    return {"name": name, **resolved}


# Keys every run directory of multivic 0.1 recorded, whatever its format (one flat DataConfig).
LEGACY_DATA_KEYS = (
    "image_size",
    "sample_rate",
    "crop_seconds",
    "test_fold",
    "meta_csv",
    "min_seconds",
    "min_word_count",
    "max_caption_tokens",
    "tokenizer",
    "tokenizer_vocab_size",
)


def data_plugins(name: str) -> tuple[type, list[type]]:
    """The class of data format ``name`` and those of the modalities it provides."""
    try:
        fmt = FORMATS.get(name).factory
        return fmt, [MODALITIES.get(m).factory for m in fmt.modalities]
    except MultivicError as exc:
        raise ConfigError(f"data.format: {exc}") from None


def resolve_data(data: dict[str, Any], legacy: bool = False) -> dict[str, Any]:
    """``data`` with the common keys and the options of its format and modalities, checked and
    typed. ``legacy``: the config.yaml of a multivic 0.1 run directory, whose keys of other
    formats and modalities are dropped instead of refused."""
    from multivic.data.formats import builtin_formats

    name = str(data.get("format") or "image_folder")
    fmt, modality_classes = data_plugins(name)
    fields = dataclass_fields(DataCommon, every_field=True) + dataclass_fields(fmt)
    for cls in modality_classes:
        fields += dataclass_fields(cls)
    names = [n for n, _, _ in fields]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"data.format={name}: its format and modalities both define data.{clash[0]}; rename one")
    if legacy:
        data = {k: v for k, v in data.items() if k in names or k not in LEGACY_DATA_KEYS}
    resolved = _typed_section("data", fields, data, f"data.format={name} with modalities {', '.join(fmt.modalities)}")
    builtins = builtin_formats()
    if resolved["root"] is None and resolved["builtin"] is not None:
        if resolved["builtin"] not in builtins:
            raise ConfigError(f"data.builtin={resolved['builtin']!r} is not one of: {', '.join(sorted(builtins))}")
        if builtins[resolved["builtin"]] != name:
            raise ConfigError(
                f"data.builtin={resolved['builtin']} is written as {builtins[resolved['builtin']]}: set data.format "
                "to match"
            )
    try:  # the plug-ins' own checks of their values (e.g. data.sample_rate > 0)
        fmt(Path("."), **options_for(fmt, resolved))
        for cls in modality_classes:
            cls(**options_for(cls, resolved))
    except (TypeError, ValueError) as exc:  # their messages start with the option's name
        raise ConfigError(f"data.{exc}") from None
    return resolved


def _resumable_paths(cls: type, prefix: str = "") -> set[str]:
    """The dotted keys of the schema dataclass ``cls`` declared resumable (a section: its own key)."""
    hints = typing.get_type_hints(cls)
    out: set[str] = set()
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        # A section (train), or an optional one (model.branch_a.optim): look inside it.
        sections = [t for t in (hint, *typing.get_args(hint)) if isinstance(t, type) and dataclasses.is_dataclass(t)]
        if is_resumable(f):
            out.add(key)
        elif sections:
            out |= _resumable_paths(sections[0], f"{key}.")
    return out


def resumable_keys(cfg: RecipeConfig) -> set[str]:
    """The keys of ``cfg``, as :func:`flatten` names them, that may change when its run is resumed.

    Those the schema, the data format and the format's modalities declare with
    :func:`multivic.options.resumable`, and every key under a section declared so.
    """
    fmt, modality_classes = data_plugins(cfg.data.format)
    data_fields = dataclasses.fields(DataCommon) + tuple(f for c in (fmt, *modality_classes) for f in option_fields(c))
    declared = _resumable_paths(RecipeConfig) | {f"data.{f.name}" for f in data_fields if is_resumable(f)}
    sections = tuple(f"{key}." for key in declared)
    return {key for key in flatten(to_container(cfg)) if key in declared or key.startswith(sections)}


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of: {', '.join(allowed)}")


def _check_optim(key: str, o: OptimConfig) -> None:
    _choice(f"{key}.name", o.name, OPTIMIZERS)
    if o.base_lr <= 0:
        raise ConfigError(f"{key}.base_lr must be > 0; got {o.base_lr}")
    if len(o.betas) != 2:
        raise ConfigError(f"{key}.betas must be two numbers; got {list(o.betas)}")
    if o.warmup_epochs < 0:
        raise ConfigError(f"{key}.warmup_epochs must be >= 0; got {o.warmup_epochs}")


def validate(cfg: RecipeConfig) -> None:
    """Checks the values a type cannot express; raises ConfigError naming the key."""
    t = cfg.train
    if t.epochs < 0:
        raise ConfigError(f"train.epochs must be >= 0 (0 evaluates the untrained model); got {t.epochs}")
    if t.batch_size < 2:
        raise ConfigError(
            "train.batch_size must be >= 2: the objectives' batch statistics (variance, covariance, negatives) need "
            f"several rows; got {t.batch_size}"
        )
    if t.grad_accum_steps < 1:
        raise ConfigError(f"train.grad_accum_steps must be >= 1; got {t.grad_accum_steps}")
    if t.log_every < 1 or t.checkpoint_every < 1 or t.keep_checkpoints < 1:
        raise ConfigError("train.log_every, train.checkpoint_every and train.keep_checkpoints must be >= 1")
    if t.checkpoint_every_steps < 0:
        raise ConfigError(
            f"train.checkpoint_every_steps must be >= 0 (0: per epoch only); got {t.checkpoint_every_steps}"
        )
    _choice("train.mixed_precision", t.mixed_precision, MIXED_PRECISION)
    _choice("train.on_nonfinite", t.on_nonfinite, NONFINITE_POLICIES)
    if t.max_nonfinite_in_row < 1:
        raise ConfigError(f"train.max_nonfinite_in_row must be >= 1; got {t.max_nonfinite_in_row}")
    if t.clip_grad_norm is not None and not t.clip_grad_norm > 0:
        raise ConfigError(f"train.clip_grad_norm must be > 0 (or null for no clipping); got {t.clip_grad_norm}")
    if not 0.0 <= cfg.data.max_bad_fraction <= 1.0:
        raise ConfigError(f"data.max_bad_fraction must be in [0, 1]; got {cfg.data.max_bad_fraction}")
    _check_optim("optim", cfg.optim)
    if cfg.data.root is None and cfg.data.builtin is None:
        raise ConfigError("no data: set data.root=PATH to your data set (or data.builtin=shapes for the built-in one)")
    if cfg.data.num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0; got {cfg.data.num_workers}")
    m = cfg.model
    if not m.shared and m.branch_a.name == m.branch_b.name:
        raise ConfigError(
            f"model.shared=false needs distinct branch names; both are {m.branch_a.name!r} (set model.branch_b.name)"
        )
    for key in ("branch_a", "branch_b"):
        b = getattr(m, key)
        if b.optim is not None:
            if m.shared:
                raise ConfigError(
                    f"model.{key}.optim needs model.shared=false: a shared network has one optimiser (use `optim`)"
                )
            _check_optim(f"model.{key}.optim", b.optim)
    _choice("model.compile_mode", m.compile_mode, COMPILE_MODES)
    if m.compile_mode != "default" and not m.compile:
        raise ConfigError(f"model.compile_mode={m.compile_mode} needs model.compile=true (it is torch.compile's mode)")
    if m.shared:
        for field_name in ("encoder", "encoder_kwargs", "expander", "grad_checkpointing"):
            a_val, b_val = getattr(m.branch_a, field_name), getattr(m.branch_b, field_name)
            if a_val != b_val:
                raise ConfigError(
                    f"model.shared=true runs branch_a's network on both sides, but model.branch_b.{field_name} "
                    f"({b_val}) differs from branch_a's ({a_val}): set model.shared=false for two networks"
                )
    if cfg.eval.cross_validate and not FORMATS.get(cfg.data.format).factory.folds:
        folded = [n for n in FORMATS.names() if FORMATS.get(n).factory.folds]
        raise ConfigError(
            f"eval.cross_validate needs fold-based data ({', '.join(folded)}); data.format is {cfg.data.format!r}"
        )
    _choice("eval.retrieval_space", cfg.eval.retrieval_space, ("embedding", "representation"))
    if cfg.eval.knn_k < 1 or cfg.eval.knn_temperature <= 0:
        raise ConfigError("eval.knn_k must be >= 1 and eval.knn_temperature > 0")
    _check_bounds(cfg)


# A run's config.yaml is read back by `multivic eval` as data from elsewhere: these bounds keep a
# tampered value (a seed no RNG takes, a million DataLoader workers, a batch of 0) a ConfigError.
MAX_SEED = 2**32 - 2**16  # NumPy's seeds are below 2**32; each process adds its rank to the seed
MAX_WORKERS = 256
# Characters a branch name may not hold: it names files, export/<name>.safetensors and .json.
_NOT_IN_NAMES = re.compile(r"[/\\\x00-\x1f\x7f]")


def _check_bounds(cfg: RecipeConfig) -> None:
    """The values a tampered or mistyped config could turn into a crash, a silent result or a
    write outside the run directory."""
    if not 0 <= cfg.seed <= MAX_SEED:
        raise ConfigError(f"seed must be in [0, {MAX_SEED}]; got {cfg.seed}")
    if cfg.data.num_workers > MAX_WORKERS:
        raise ConfigError(f"data.num_workers must be at most {MAX_WORKERS}; got {cfg.data.num_workers}")
    e = cfg.eval
    if e.batch_size < 1:
        raise ConfigError(f"eval.batch_size must be >= 1; got {e.batch_size}")
    if e.linear_epochs < 1:
        raise ConfigError(
            f"eval.linear_epochs must be >= 1 (a probe trained for no epoch scores chance); got {e.linear_epochs}"
        )
    if e.max_train_samples is not None and e.max_train_samples < 1:
        raise ConfigError(f"eval.max_train_samples must be >= 1 or null (all); got {e.max_train_samples}")
    for key, low in (("linear_lr", 0.0), ("knn_temperature", 0.0), ("linear_weight_decay", None)):
        value = getattr(e, key)
        if not math.isfinite(value) or value < 0 or (low is not None and value <= low):
            raise ConfigError(f"eval.{key} must be a finite number {'>' if low is not None else '>='} 0; got {value}")
    for side in ("branch_a", "branch_b"):
        name = getattr(cfg.model, side).name
        if not name or name in (".", "..") or _NOT_IN_NAMES.search(name):
            raise ConfigError(
                f"model.{side}.name={name!r} is not a plain name: it names the files export/<name>.*; "
                "use letters, digits, '-', '_' or '.'"
            )


def to_yaml(cfg: RecipeConfig) -> str:
    """The resolved config as YAML text (written into every run directory)."""
    return OmegaConf.to_yaml(cfg)


def to_container(cfg: RecipeConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one flat dict with dotted keys; lists become their JSON text.

    ``{"loss": {"gamma": 1.0}, "crop": [0.4, 1.0]}`` gives ``{"loss.gamma": 1.0, "crop": "[0.4, 1.0]"}``.
    An empty mapping keeps its key, as ``"{}"``, so a run that sets nothing there still has it.
    """
    if not isinstance(tree, dict):
        return {prefix: _scalar(tree)} if prefix else {}
    if not tree and prefix:
        return {prefix: "{}"}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _scalar(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return value
