"""Typed recipe configuration: OmegaConf structured configs over dataclasses.

A recipe is a YAML file whose keys must exist in :class:`RecipeConfig`; command-line
overrides are ``key=value`` dotlists merged on top. An unknown key or a value of the wrong
type is a :class:`ConfigError` naming the key. This module only describes and validates: the
recipe layer (:mod:`multivic.recipe`) turns a config into components.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from multivic.errors import ConfigError
from multivic.objectives.vicreg import COVARIANCE_FORMS, VARIANCE_CONVENTIONS

MIXED_PRECISION = ("no", "bf16", "fp16")
OPTIMIZERS = ("lars", "adamw")
DATA_FORMATS = ("image_folder", "cifar10", "stl10", "esc50", "audio_csv", "coco")
# Built-in data sets and the on-disk format each is written in.
BUILTIN_DATASETS = {"shapes": "image_folder", "sounds": "esc50", "captions": "coco"}


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


@dataclass
class ModelConfig:
    # shared: one network on both sides; branch_b then only contributes its `view`.
    shared: bool = True
    # Views start empty (a YAML `view` merges into this default): recipes state them.
    branch_a: BranchConfig = field(default_factory=BranchConfig)
    branch_b: BranchConfig = field(default_factory=BranchConfig)


@dataclass
class LossConfig:
    sim_coeff: float = 25.0
    std_coeff: float = 25.0
    cov_coeff: float = 1.0
    gamma: float = 1.0
    eps: float = 1e-4
    variance_convention: str = "released"
    covariance_form: str = "auto"


@dataclass
class DataConfig:
    # Reader of data.root: image_folder (root/train/<class>/*, root/val/<class>/*), cifar10,
    # stl10, esc50 (root/audio/*.wav + root/meta/esc50.csv) or audio_csv (root/<meta_csv>).
    format: str = "image_folder"
    # Folder of the user's data. Empty: the built-in data set named by `builtin` is used.
    root: Optional[str] = None
    builtin: Optional[str] = None
    num_workers: int = 4
    # Images.
    image_size: int = 224
    # Audio: clips are mixed to mono and resampled to sample_rate; views are crop_seconds long.
    sample_rate: int = 16000
    crop_seconds: float = 2.0
    # Audio folds: `val` is test_fold, `train` the others (ESC-50 has folds 1-5).
    test_fold: int = 5
    meta_csv: str = "labels.csv"
    # Clips shorter than this are skipped (and counted in a warning).
    min_seconds: float = 0.05
    # Captions (coco: official or Karpathy layout): a word vocabulary of the training captions'
    # words seen at least min_word_count times; captions cut to max_caption_tokens.
    min_word_count: int = 1
    max_caption_tokens: int = 32
    # How captions become tokens: "word" (the vocabulary above), "wordpiece" (trained with the
    # tokenizers library on the training captions, at most tokenizer_vocab_size entries), or the
    # path of a local tokenizer folder (Hugging Face save_pretrained; never downloaded).
    tokenizer: str = "word"
    tokenizer_vocab_size: int = 8000


@dataclass
class TrainConfig:
    epochs: int = 100
    # Global batch: rows the variance and covariance terms see, over all processes.
    batch_size: int = 2048
    grad_accum_steps: int = 1
    mixed_precision: str = "no"
    log_every: int = 10
    checkpoint_every: int = 1
    # How many of the newest epoch checkpoints to keep in the run directory.
    keep_checkpoints: int = 1
    # Batch norm over the global batch on several GPUs (as released); no effect on one process or CPU.
    sync_batchnorm: bool = True
    # Train on the CPU even when a GPU is present.
    cpu: bool = False


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
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _one_line(exc: OmegaConfBaseException) -> str:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None)
    first = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    if exc.__class__.__name__ == "ConfigKeyError" and key:
        return f"unknown config key {key!r}: check the spelling against the recipe reference in the README"
    return f"config key {key!r}: {first}" if key else first


def load_config(recipe: str | Path | None, overrides: list[str] | None = None) -> RecipeConfig:
    """Read a recipe YAML (or only defaults when None), apply ``key=value`` overrides, validate."""
    schema = OmegaConf.structured(RecipeConfig)
    try:
        layers: list[Any] = [schema]
        if recipe is not None:
            path = Path(recipe)
            if not path.is_file():
                raise ConfigError(f"recipe {path} not found: give the path of a YAML recipe, e.g. recipes/quickstart/image_image.yaml")
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
        raise ConfigError(f"cannot read recipe {recipe}: {str(exc).splitlines()[0]}") from None
    cfg: RecipeConfig = merged  # type: ignore[assignment]  # a DictConfig typed by the schema
    if recipe is not None:
        # .py imports are relative to the recipe; stored absolute so the run dir stays usable.
        base = Path(recipe).resolve().parent
        cfg.imports = [str((base / m).resolve()) if m.endswith(".py") and not Path(m).is_absolute() else m for m in cfg.imports]
    validate(cfg)
    return cfg


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
            f"train.batch_size must be >= 2: VICReg's variance and covariance need several rows; got {t.batch_size}"
        )
    if t.grad_accum_steps < 1:
        raise ConfigError(f"train.grad_accum_steps must be >= 1; got {t.grad_accum_steps}")
    if t.log_every < 1 or t.checkpoint_every < 1 or t.keep_checkpoints < 1:
        raise ConfigError("train.log_every, train.checkpoint_every and train.keep_checkpoints must be >= 1")
    _choice("train.mixed_precision", t.mixed_precision, MIXED_PRECISION)
    _check_optim("optim", cfg.optim)
    _choice("loss.variance_convention", cfg.loss.variance_convention, VARIANCE_CONVENTIONS)
    _choice("loss.covariance_form", cfg.loss.covariance_form, COVARIANCE_FORMS)
    _choice("data.format", cfg.data.format, DATA_FORMATS)
    if cfg.loss.eps <= 0:
        raise ConfigError(f"loss.eps must be > 0; got {cfg.loss.eps}")
    if cfg.data.root is None and cfg.data.builtin is None:
        raise ConfigError(
            "no data: set data.root=PATH to your data set (or data.builtin=shapes for the built-in one)"
        )
    if cfg.data.root is None:
        _choice("data.builtin", str(cfg.data.builtin), tuple(BUILTIN_DATASETS))
        if BUILTIN_DATASETS[str(cfg.data.builtin)] != cfg.data.format:
            raise ConfigError(
                f"data.builtin={cfg.data.builtin} is written as {BUILTIN_DATASETS[str(cfg.data.builtin)]}: set data.format to match"
            )
    if cfg.data.sample_rate <= 0:
        raise ConfigError(f"data.sample_rate must be > 0 (samples per second); got {cfg.data.sample_rate}")
    if cfg.data.crop_seconds <= 0:
        raise ConfigError(f"data.crop_seconds must be > 0; got {cfg.data.crop_seconds}")
    if cfg.data.image_size < 8:
        raise ConfigError(f"data.image_size must be >= 8; got {cfg.data.image_size}")
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
                raise ConfigError(f"model.{key}.optim needs model.shared=false: a shared network has one optimiser (use `optim`)")
            _check_optim(f"model.{key}.optim", b.optim)
    if m.shared:
        for field_name in ("encoder", "encoder_kwargs", "expander"):
            a_val, b_val = getattr(m.branch_a, field_name), getattr(m.branch_b, field_name)
            if a_val != b_val:
                raise ConfigError(
                    f"model.shared=true runs branch_a's network on both sides, but model.branch_b.{field_name} "
                    f"({b_val}) differs from branch_a's ({a_val}): set model.shared=false for two networks"
                )
    if cfg.eval.cross_validate and cfg.data.format not in ("esc50", "audio_csv"):
        raise ConfigError(f"eval.cross_validate needs fold-based data (esc50, audio_csv); data.format is {cfg.data.format!r}")
    _choice("eval.retrieval_space", cfg.eval.retrieval_space, ("embedding", "representation"))
    if cfg.eval.knn_k < 1 or cfg.eval.knn_temperature <= 0:
        raise ConfigError("eval.knn_k must be >= 1 and eval.knn_temperature > 0")


def to_yaml(cfg: RecipeConfig) -> str:
    """The resolved config as YAML text (written into every run directory)."""
    return OmegaConf.to_yaml(cfg)


def to_container(cfg: RecipeConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
