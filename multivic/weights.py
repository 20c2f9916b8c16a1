"""Another toolkit's weights file in a registered encoder, read as data, never run as code.

:func:`read_state_dict` reads ``.safetensors`` with safetensors and every other file (``.pt``,
``.pth``, ``.ckpt``, ``.bin``) with ``torch.load(weights_only=True)``, which refuses pickled
Python objects instead of running them. :func:`load_encoder_weights` maps the keys onto the
encoder's own and loads them. The mapping, in order:

- wrappers: a dict holding the weights under ``state_dict``, ``model_state_dict``, ``model``,
  ``module``, ``net`` or ``network`` (Lightning, training-loop checkpoints) is opened;
- prefixes: a key's leading run of wrapper names (``module.``, ``_orig_mod.``, ``backbone.``,
  ``encoder.``, ``model.``, ``net.``) is dropped, on the file's keys and on the encoder's alike.
  So torchvision's ``layer1.0.conv1.weight``, lightly's ``backbone.…``, a DDP ``module.…``, a
  timm checkpoint's ``blocks.0.…`` and a multivic export's ``encoder.net.layer1.…`` all meet
  multivic's ``net.layer1.…`` (ResNets) or ``model.blocks.0.…`` (timm encoders);
- numbered children: keys that then start with a number (``0.weight``, ``4.0.conv1.weight``:
  a backbone built as ``nn.Sequential(*list(resnet.children())[:-1])``, as lightly's examples
  do) name the encoder's trunk's children by position (0 conv1, 1 bn1, 4-7 layer1-4 of a
  torchvision ResNet);
- heads: keys left unmatched under ``fc.``, ``head.``, ``classifier.``, ``projection_head.``,
  ``prediction_head.``, ``projector.``, ``predictor.`` or ``expander.`` (a classifier or the
  SSL head; a representation is evaluated without them) are dropped, with a log line;
- ``num_batches_tracked`` counters a file lacks keep the encoder's own (they do not change
  the outputs in eval mode).

Anything else missing or left over is a :class:`WeightsError` naming a few keys, unless
``strict=False``; a key whose shapes differ is one naming the key and both shapes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from multivic.errors import MultivicError
from multivic.files import first_line, is_present

logger = logging.getLogger("multivic")

CONTAINERS = ("state_dict", "model_state_dict", "model", "module", "net", "network")
WRAPPERS = ("module", "_orig_mod", "backbone", "encoder", "model", "net")
HEADS = ("fc", "head", "classifier", "projection_head", "prediction_head", "projector", "predictor", "expander")
_SHOW = 3  # keys named in an error


class WeightsError(MultivicError, ValueError):
    """A weights file is missing, damaged, not plain tensors, or does not fit the encoder."""


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a weights file, keyed by name, with the wrappers opened (see the module doc).

    Never runs code from the file: a pickled object other than tensors and plain containers
    is refused with a :class:`WeightsError`."""

    path = Path(path).expanduser()
    if not is_present(path, "give a .safetensors, .pt, .pth or .ckpt file", WeightsError):  # never opens a FIFO
        raise WeightsError(f"weights file {path} not found: give a .safetensors, .pt, .pth or .ckpt file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            raw: Any = load_file(str(path))
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: the file is the problem
            raise WeightsError(
                f"{path} cannot be read as safetensors ({first_line(exc)}): the file is damaged or not a weights file"
            ) from None
    else:
        import pickle

        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights only" not in str(exc).lower():
                raise WeightsError(
                    f"{path} cannot be read by torch.load ({first_line(exc)}): the file is damaged or not a weights "
                    "file"
                ) from None
            found = re.search(r"GLOBAL (\S+)", str(exc))
            what = f" ({found.group(1)})" if found else ""
            raise WeightsError(
                f"{path} holds pickled Python objects{what}, not only tensors, and loading them would run their code: "
                "save a plain state dict (torch.save(model.state_dict(), path)) or a .safetensors file"
            ) from None
        except Exception as exc:  # noqa: BLE001 - truncated zip, not a torch file, ...
            raise WeightsError(
                f"{path} cannot be read by torch.load ({first_line(exc)}): the file is damaged or not a weights file"
            ) from None
    return unwrap_state_dict(raw, str(path))


def unwrap_state_dict(raw: Any, origin: str = "weights") -> dict[str, Tensor]:
    """The tensors of ``raw``: a state dict, or a dict holding one under a name of :data:`CONTAINERS`."""
    state = raw
    for _ in range(len(CONTAINERS)):  # {"state_dict": {"model": ...}} and the like
        if isinstance(state, Mapping) and state and all(isinstance(v, Tensor) for v in state.values()):
            return dict(state)
        inner = [k for k in CONTAINERS if isinstance(state, Mapping) and isinstance(state.get(k), Mapping)]
        if len(inner) != 1:
            break
        state = state[inner[0]]
    if isinstance(state, Mapping) and state and all(isinstance(v, Tensor) for v in state.values()):
        return dict(state)
    top = ", ".join(map(str, list(state)[:6])) if isinstance(state, Mapping) else type(state).__name__
    raise WeightsError(
        f"{origin} holds no state dict of tensors (found: {top or 'nothing'}): save the encoder's weights "
        "(torch.save(model.state_dict(), path)), or a dict with them under 'state_dict' or 'model'"
    )


def _strip(key: str) -> str:
    """``key`` without its leading run of wrapper names."""
    parts = key.split(".")
    i = 0
    while i < len(parts) - 1 and parts[i] in WRAPPERS:
        i += 1
    return ".".join(parts[i:])


def _wrapper_run(key: str) -> str:
    return key[: len(key) - len(_strip(key))].rstrip(".")


def map_state_dict(
    state: dict[str, Tensor], encoder: nn.Module
) -> tuple[dict[str, Tensor], dict[str, str], list[str], list[str]]:
    """The file's tensors under the encoder's own key names.

    Returns (mapped state, encoder key -> file key, the file's unmatched keys that are not
    heads, the file's dropped head keys)."""
    own = encoder.state_dict()
    own_by_stem = {_strip(k): k for k in own}
    if len(own_by_stem) != len(own):  # stripping would merge two of the encoder's keys: keep them whole
        own_by_stem = {k: k for k in own}
    trunk = _trunk(encoder, own)
    mapped: dict[str, Tensor] = {}
    source: dict[str, str] = {}
    unmatched: list[str] = []
    heads: list[str] = []
    for key, value in state.items():
        stem = _strip(key)
        first, _, rest = stem.partition(".")
        if first.isdigit() and stem not in own_by_stem and trunk and int(first) < len(trunk) and rest:
            stem = f"{trunk[int(first)]}.{rest}"
        target = own_by_stem.get(stem)
        if target is None:
            (heads if stem.split(".")[0] in HEADS else unmatched).append(key)
            continue
        if target in source:
            raise WeightsError(
                f"weights {source[target]!r} and {key!r} both map onto the encoder's {target!r}: keep one of them in "
                "the file"
            )
        mapped[target], source[target] = value, key
    return mapped, source, unmatched, heads


def _trunk(encoder: nn.Module, own: Mapping[str, Tensor]) -> list[str]:
    """The names of the children of the module that holds the encoder's stripped keys, in order."""
    runs = {_wrapper_run(k) for k in own}
    if len(runs) != 1:
        return []
    try:
        module = encoder.get_submodule(runs.pop())
    except AttributeError:
        return []
    return [name for name, _ in module.named_children()]


def load_encoder_weights(encoder: nn.Module, path: str | Path, strict: bool = True) -> dict[str, list[str]]:
    """Load the weights file at ``path`` into ``encoder`` (see the module doc for the mapping).

    ``strict=False`` loads the keys that match and leaves the encoder's others as they are
    (logged), instead of refusing. Returns the file's keys by fate: "loaded", "heads" (dropped),
    "unmatched" and, of the encoder's, "missing"."""
    path = Path(path).expanduser()
    state = read_state_dict(path)
    return load_state_into(encoder, state, str(path), strict)


def load_state_into(
    encoder: nn.Module, state: dict[str, Tensor], origin: str = "weights", strict: bool = True
) -> dict[str, list[str]]:
    """:func:`load_encoder_weights` for a state dict in memory (wrappers opened as for a file);
    ``origin`` names it in messages."""
    state = unwrap_state_dict(state, origin)
    mapped, source, unmatched, heads = map_state_dict(state, encoder)
    own = encoder.state_dict()
    for key, value in mapped.items():
        if value.shape != own[key].shape:
            raise WeightsError(
                f"{origin}: {source[key]!r} has shape {list(value.shape)} but the encoder's {key!r} has "
                f"{list(own[key].shape)}: the encoder's arguments differ from the ones the weights were made with "
                "(set them with --encoder-kwargs / encoder_kwargs)"
            )
    for key, value in mapped.items():
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            raise WeightsError(
                f"{origin}: {source[key]!r} holds NaN or infinite values: the weights diverged or the file is damaged; "
                "evaluate a checkpoint from before it diverged"
            )
    missing = [k for k in own if k not in mapped and not k.endswith("num_batches_tracked")]
    if not mapped:
        raise WeightsError(
            f"{origin}: none of its {len(state)} weights (e.g. {_few(list(state))}) match the encoder's "
            f"(e.g. {_few(list(own))}): pick the --encoder the weights belong to"
        )
    if (missing or unmatched) and strict:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of the encoder's weights are missing from it (e.g. {_few(missing)})")
        if unmatched:
            parts.append(f"{len(unmatched)} of its weights match nothing (e.g. {_few(unmatched)})")
        raise WeightsError(
            f"{origin}: {' and '.join(parts)}: check that --encoder and --encoder-kwargs match the weights' "
            "architecture, or pass --no-strict to load only the weights that match"
        )
    if heads:
        logger.info(
            "%s: left out %d head weights (%s): the representation is evaluated without them",
            origin,
            len(heads),
            _few(heads),
        )
    if missing:
        logger.warning(
            "%s: %d of the encoder's weights are not in the file and keep their initial values (e.g. %s)",
            origin,
            len(missing),
            _few(missing),
        )
    if unmatched:
        logger.warning(
            "%s: %d of its weights match nothing in the encoder and are ignored (e.g. %s)",
            origin,
            len(unmatched),
            _few(unmatched),
        )
    encoder.load_state_dict({**own, **mapped})
    return {"loaded": [source[k] for k in mapped], "heads": heads, "unmatched": unmatched, "missing": missing}


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... {len(keys) - _SHOW} more" if len(keys) > _SHOW else "")
