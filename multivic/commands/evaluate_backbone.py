"""``multivic eval --recipe R --encoder NAME --weights FILE``: score any weights under our protocol.

A registered encoder, given weights from any toolkit (see :mod:`multivic.weights` for the files
and key layouts read), is evaluated on a recipe's data exactly as a run's exported branch is:
the same data, evaluation view, linear probe, k-NN and seeds. So a supervised reference or a
lightly/torchvision/timm model lands in the same table as a multivic run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from multivic.branch import Branch, build_branch
from multivic.build import build_data, build_eval_settings, plain
from multivic.config import RecipeConfig
from multivic.data.formats import DataSetup
from multivic.errors import ConfigError
from multivic.evaluation.protocols import protocol_named
from multivic.registry import FORMATS, import_modules
from multivic.weights import load_encoder_weights, load_state_into


def evaluate_backbone(
    cfg: RecipeConfig,
    encoder: str,
    weights: str | Path | Mapping[str, Tensor] | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
    side: str = "a",
    device: torch.device | str | None = None,
    *,
    strict: bool = True,
    name: str | None = None,
    data: DataSetup | None = None,
) -> dict[str, float]:
    """Metrics of the registered encoder ``encoder`` with ``weights`` on the recipe's data.

    ``cfg``: a loaded recipe (:func:`multivic.config.load_config`); its ``data.*`` and
    ``eval.*`` settings and ``seed`` define the evaluation, as for ``multivic eval RUN_DIR``.
    ``weights``: a weights file (.safetensors; .pt/.pth/.ckpt/.bin read with
    ``torch.load(weights_only=True)``), a state dict, or None for a random initialisation
    (drawn from ``cfg.seed``, a reference point). Keys are mapped as :mod:`multivic.weights`
    describes (wrappers, prefixes, lightly's numbered backbone, heads dropped); missing or
    unmatched keys raise :class:`~multivic.weights.WeightsError` unless ``strict=False``.
    ``encoder_kwargs``: the encoder's arguments. When ``encoder`` is the encoder of the
    recipe's ``side`` ("a" or "b"), its ``encoder_kwargs`` there are the defaults these
    update (the recipe's architecture, e.g. a 32 px stem); otherwise the factory's defaults.
    ``name``: the branch name in the metric keys (default: the recipe side's name, so the keys
    match those of a run of the recipe, e.g. ``image/linear_top1``).

    The encoder is evaluated as a branch without an expander, so the collapse statistics
    (``std_mean``, ``rankme``, ...) are those of the representation. Classification formats
    only: retrieval ranks one branch's outputs against another's, a space two separately
    trained encoders do not share; it raises :class:`~multivic.errors.ConfigError`.
    Returns the flat metrics, e.g. ``{"image/linear_top1": 71.2, "image/knn_top1": 68.0, ...}``.
    """
    if side not in ("a", "b"):
        raise ConfigError(f"side must be 'a' or 'b' (a branch of the recipe), not {side!r}")
    import_modules(list(cfg.imports))  # a format or encoder of the recipe's own modules
    fmt = FORMATS.get(cfg.data.format).factory
    protocol = fmt.protocol
    if protocol != "classification":
        raise ConfigError(
            f"data.format={cfg.data.format!r} is evaluated by {protocol}, which compares two branches' outputs "
            "in one space that separately trained encoders do not share: evaluate a backbone on a "
            "classification format (linear probe and k-NN), or a multivic run with multivic eval RUN_DIR"
        )
    branch_cfg = cfg.model.branch_a if side == "a" else cfg.model.branch_b
    kwargs = dict(plain(branch_cfg.encoder_kwargs) or {}) if encoder == branch_cfg.encoder else {}
    kwargs.update(encoder_kwargs or {})
    name = name or str(branch_cfg.name)
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    branch = _build(name, encoder, kwargs, int(cfg.seed))
    if branch.modality not in fmt.modalities:
        given = " and ".join(map(repr, fmt.modalities))
        raise ConfigError(
            f"encoder {encoder!r} reads modality {branch.modality!r} but data.format={cfg.data.format!r} gives "
            f"{given}: pick an encoder of that modality"
        )
    if isinstance(weights, Mapping):  # before the data: a wrong file fails fast
        load_state_into(branch.encoder, dict(weights), "the state dict", strict)
    elif weights is not None:
        load_encoder_weights(branch.encoder, weights, strict)

    data = data or build_data(cfg)
    modality = data.modalities[branch.modality]
    if modality.needs_fitting:
        raise ConfigError(
            f"modality {modality.name!r} needs a fitted state (a vocabulary) that a weights file does not carry: "
            "evaluate the multivic run that trained the encoder (multivic eval RUN_DIR)"
        )
    modality.check_encoder(f"encoder {encoder!r}", branch.encoder)
    branch.preprocess = modality
    branch = branch.to(device).eval()

    return protocol_named(protocol)(data, {name: branch}, device, build_eval_settings(cfg)).metrics


def _build(name: str, encoder: str, kwargs: dict[str, Any], seed: int) -> Branch:
    """The encoder as a branch without an expander; a random initialisation drawn from ``seed``
    without touching the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return build_branch(name, encoder, kwargs, "none")
        except TypeError as exc:  # a factory given an argument it does not take
            raise ConfigError(
                f"encoder {encoder!r}: {exc}; set its arguments with --encoder-kwargs / encoder_kwargs"
            ) from None
