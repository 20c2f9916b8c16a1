"""The encoder registry: factories register under a name, recipes create by name.

An encoder is an ``nn.Module`` that takes the batch its modality's collate produces and
returns a [B, D] tensor. It declares ``modality`` (str) and ``out_dim`` (int, = D). Register a
factory that builds one::

    @register_encoder("my_cnn", modality="image")
    def my_cnn(width: int = 64) -> nn.Module: ...

    encoder = create_encoder("my_cnn", width=32)

Built-in encoders live in the top-level ``encoders`` package and are imported the first time
the registry is read, so importing ``multivic`` stays cheap. Three more ways in:

* a family prefix: ``timm:<model name>`` builds any timm model (see ``encoders/timm_models.py``);
* an import path ``package.module:factory`` as the encoder name: the factory is imported and
  called, and the module it returns must declare ``modality`` itself;
* the ``multivic.encoders`` entry-point group of installed distributions: each entry point's
  name is an encoder name and its object a factory (decorated or not), loaded at first use.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from torch import nn

from multivic.errors import ConfigError, RegistryError

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
_FAMILIES: dict[str, EncoderSpec] = {}  # prefix (e.g. "timm:") -> spec whose factory takes the rest first
_PLUGIN_ERRORS: dict[str, str] = {}  # encoder name -> why its entry point failed to load
_builtins_loaded = False
ENTRY_POINT_GROUP = "multivic.encoders"


def _same_definition(a: EncoderFactory, b: EncoderFactory) -> bool:
    """The same function from the same file, imported twice (e.g. by module name and by path)."""
    try:
        return a.__qualname__ == b.__qualname__ and inspect.getsourcefile(a) == inspect.getsourcefile(b)
    except TypeError:
        return False


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
        if key in _REGISTRY and not overwrite and not _same_definition(_REGISTRY[key].factory, factory):
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


def register_encoder_family(prefix: str, *, modality: str) -> Callable[[EncoderFactory], EncoderFactory]:
    """Decorator for a factory serving every name that starts with ``prefix``.

    ``create_encoder(prefix + rest, **kw)`` calls ``factory(rest, **kw)``; e.g. "timm:" with
    ``factory(model_name, image_size=None, ...)``.
    """

    def decorate(factory: EncoderFactory) -> EncoderFactory:
        doc = inspect.getdoc(factory) or ""
        _FAMILIES[prefix] = EncoderSpec(prefix + "<name>", factory, modality, factory.__module__, doc.splitlines()[0] if doc else "")
        return factory

    return decorate


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        importlib.import_module("encoders")
        _load_entry_points()


def _load_entry_points() -> None:
    """Register the factories that installed distributions declare under ``multivic.encoders``.

    A failing entry point does not stop the others: its error is kept and raised when its
    encoder is asked for, and ``multivic encoders`` lists it.
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
        try:
            factory = ep.load()
        except Exception as exc:  # a plugin's import error must not take the registry down
            _PLUGIN_ERRORS[ep.name] = (
                f"entry point {ep.name!r} ({ep.value}) of distribution {dist!r} failed to load: "
                f"{exc.__class__.__name__}: {exc}"
            )
            continue
        if ep.name in _REGISTRY and _REGISTRY[ep.name].factory is factory:
            continue  # the import already registered it with @register_encoder
        modality = getattr(factory, "modality", None)
        if not isinstance(modality, str):
            _PLUGIN_ERRORS[ep.name] = (
                f"entry point {ep.name!r} of distribution {dist!r}: decorate {ep.value} with "
                "@multivic.register_encoder(..., modality=...) or give the factory a `modality` attribute"
            )
            continue
        register_encoder(ep.name, modality=modality, overwrite=True)(factory)
        spec = _REGISTRY[ep.name]
        _REGISTRY[ep.name] = EncoderSpec(spec.name, spec.factory, spec.modality, f"entry point of {dist}", spec.description)


def import_modules(names: Sequence[str]) -> None:
    """Import user modules (dotted names, or paths of .py files) so their decorators register.

    The working directory is put on ``sys.path`` for dotted names, as ``python -m`` would.
    """
    for name in names:
        try:
            if name.endswith(".py"):
                path = Path(name).expanduser().resolve()
                if not path.is_file():
                    raise FileNotFoundError(f"no file {path}")
                module_name = f"multivic_user_{path.stem}"
                if module_name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                sys.modules[module_name] = module
                try:
                    spec.loader.exec_module(module)  # type: ignore[union-attr]
                except BaseException:
                    del sys.modules[module_name]
                    raise
            else:
                _working_dir_on_path()
                importlib.import_module(name)
        except RegistryError:
            raise
        except Exception as exc:
            raise ConfigError(f"imports: cannot import {name!r} ({exc.__class__.__name__}: {exc})") from None


def plugin_errors() -> dict[str, str]:
    """Entry points that failed to load, by encoder name."""
    _load_builtins()
    return dict(_PLUGIN_ERRORS)


def _working_dir_on_path() -> None:
    """Put the working directory on sys.path, as ``python -m`` would, so project-local modules import."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def _import_path_spec(name: str) -> EncoderSpec:
    module_name, _, attr = name.partition(":")
    _working_dir_on_path()
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise RegistryError(
            f"encoder {name!r}: cannot import module {module_name!r} ({exc.__class__.__name__}: {exc}); "
            "is it on PYTHONPATH or installed?"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise RegistryError(f"encoder {name!r}: module {module_name!r} has no callable {attr!r}")
    return EncoderSpec(name, factory, getattr(factory, "modality", ""), module_name, "")


def list_encoders(modality: str | None = None) -> list[str]:
    """Sorted names of the registered encoders, optionally only those of one modality."""
    _load_builtins()
    return sorted(k for k, s in _REGISTRY.items() if modality is None or s.modality == modality)


def encoder_spec(name: str) -> EncoderSpec:
    """The registry entry of ``name``; a one-line error listing the known names otherwise."""
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _PLUGIN_ERRORS:
        raise RegistryError(_PLUGIN_ERRORS[name])
    for prefix, family in _FAMILIES.items():
        if name.startswith(prefix):
            rest = name[len(prefix):]
            return EncoderSpec(name, functools.partial(family.factory, rest), family.modality, family.source, family.description)
    if ":" in name:
        return _import_path_spec(name)
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    broken = f" ({len(_PLUGIN_ERRORS)} plugin entry points failed to load: see `multivic encoders`)" if _PLUGIN_ERRORS else ""
    families = "".join(f", {p}<name>" for p in _FAMILIES)
    raise RegistryError(
        f"unknown encoder {name!r}.{hint} Known encoders: {', '.join(sorted(_REGISTRY))}{families}, "
        f"or an import path package.module:factory{broken}"
    )


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
    if declared is None and not spec.modality:
        raise RegistryError(f"encoder {name!r}: the module must set a string attribute modality (e.g. 'image')")
    if declared is None:
        module.modality = spec.modality
    elif spec.modality and declared != spec.modality:
        raise RegistryError(
            f"encoder {name!r} is registered as modality {spec.modality!r} but its module says {declared!r}"
        )
