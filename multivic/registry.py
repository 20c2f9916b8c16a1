"""The encoder registry: factories register under a name, recipes create by name.

An encoder is an ``nn.Module`` that takes the batch its modality's collate produces and
returns a [B, D] tensor. It declares ``modality`` (str) and ``out_dim`` (int, = D). Register a
factory that builds one::

    @register_encoder("my_cnn", modality="image")
    def my_cnn(width: int = 64) -> nn.Module: ...

    encoder = create_encoder("my_cnn", width=32)

Built-in encoders live in the top-level ``encoders`` package and are imported the first time
the registry is read, so importing ``multivic`` stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from multivic.errors import RegistryError

EncoderFactory = Callable[..., nn.Module]


@dataclass(frozen=True)
class EncoderSpec:
    """One registry entry: the factory, the modality it serves and where it came from."""

    name: str
    factory: EncoderFactory
    modality: str
    source: str
    description: str


_REGISTRY: dict[str, EncoderSpec] = {}
_builtins_loaded = False


def register_encoder(
    name: str | None = None, *, modality: str, overwrite: bool = False
) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator registering an encoder factory under ``name`` (default: the function's name).

    Args:
        name: registry key, as written in recipes.
        modality: the kind of input the encoder reads ("image", "text", "waveform", ...).
        overwrite: replace an existing entry of the same name instead of raising.
    """

    def decorate(factory: EncoderFactory) -> EncoderFactory:
        key = name or factory.__name__
        if not isinstance(modality, str) or not modality:
            raise RegistryError(f"encoder {key!r}: modality must be a non-empty string")
        if key in _REGISTRY and not overwrite:
            raise RegistryError(
                f"encoder {key!r} is already registered by {_REGISTRY[key].source}; "
                "pick another name or pass overwrite=True"
            )
        doc = inspect.getdoc(factory) or ""
        _REGISTRY[key] = EncoderSpec(
            name=key,
            factory=factory,
            modality=modality,
            source=getattr(factory, "__module__", "?"),
            description=doc.splitlines()[0] if doc else "",
        )
        return factory

    return decorate


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module("encoders")


def list_encoders(modality: str | None = None) -> list[str]:
    """Sorted names of the registered encoders, optionally only those of one modality."""
    _load_builtins()
    return sorted(k for k, s in _REGISTRY.items() if modality is None or s.modality == modality)


def encoder_spec(name: str) -> EncoderSpec:
    """The registry entry of ``name``; a one-line error listing the known names otherwise."""
    _load_builtins()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise RegistryError(
            f"unknown encoder {name!r}.{hint} Known encoders: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def create_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build the encoder registered as ``name`` with the factory's keyword arguments.

    The returned module carries ``modality`` and ``out_dim`` attributes.
    """
    spec = encoder_spec(name)
    accepted = _accepted_kwargs(spec.factory)
    if accepted is not None:
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise RegistryError(
                f"encoder {name!r} does not take {', '.join(map(repr, unknown))}; "
                f"it takes: {', '.join(sorted(accepted)) or 'no arguments'}"
            )
    module = spec.factory(**kwargs)
    _check_contract(name, spec, module)
    return module


def _accepted_kwargs(factory: EncoderFactory) -> set[str] | None:
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _check_contract(name: str, spec: EncoderSpec, module: nn.Module) -> None:
    if not isinstance(module, nn.Module):
        raise RegistryError(f"encoder {name!r}: factory returned {type(module).__name__}, not an nn.Module")
    out_dim = getattr(module, "out_dim", None)
    if not isinstance(out_dim, int) or out_dim <= 0:
        raise RegistryError(f"encoder {name!r}: the module must set an integer attribute out_dim > 0")
    declared = getattr(module, "modality", None)
    if declared is None:
        module.modality = spec.modality
    elif declared != spec.modality:
        raise RegistryError(
            f"encoder {name!r} is registered as modality {spec.modality!r} but its module says {declared!r}"
        )
