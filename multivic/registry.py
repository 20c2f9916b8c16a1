"""One registry type for every extension point: encoders, objectives, modalities, data formats.

Each extension point is a :class:`Registry` instance. An entry is registered by a decorator on
a factory (a function or a class) and created by name, in the spirit of timm's
``register_model``::

    @register_objective("my_loss")
    class MyLoss(nn.Module): ...

    loss = OBJECTIVES.create("my_loss", temperature=0.1)

Four ways in, the same for every extension point:

* built-ins: every module of the registry's built-in package (e.g. ``multivic.objectives``)
  is imported at the first lookup, so adding a built-in is adding one file;
* a recipe's ``imports:`` (dotted module names or ``.py`` paths): see :func:`import_modules`;
* an import path ``package.module:factory`` used as the name;
* the entry-point group of installed distributions (``multivic.encoders``,
  ``multivic.objectives``, ``multivic.modalities``, ``multivic.formats``): each entry point's
  name is the registry name and its object the factory, loaded at the first lookup. One that
  fails to import is reported by name and distribution; the others still load.

Creating checks the keyword arguments against the factory's signature: an unknown one is a
one-line error that lists the accepted ones.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Iterable, Sequence, TypeVar

from multivic.errors import ConfigError, RegistryError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry:
    """One registry entry: the factory, where it came from, and what it declared (e.g. a modality)."""

    name: str
    factory: Callable[..., Any]
    source: str
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _first_doc_line(obj: Any) -> str:
    """The first sentence of ``obj``'s docstring, on one line (docstrings wrap their lines)."""
    paragraph = (inspect.getdoc(obj) or "").split("\n\n")[0]
    text = " ".join(paragraph.split())
    return text.split(". ")[0].rstrip(".")


def _same_definition(a: Callable, b: Callable) -> bool:
    """The same function or class from the same file, imported twice (by module name and by path)."""
    try:
        return a.__qualname__ == b.__qualname__ and inspect.getsourcefile(a) == inspect.getsourcefile(b)
    except TypeError:
        return False


def accepted_kwargs(factory: Callable[..., Any]) -> set[str] | None:
    """Keyword names ``factory`` accepts; None when it takes ``**kwargs`` (anything goes)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def check_kwargs(what: str, factory: Callable[..., Any], kwargs: Iterable[str], exclude: Iterable[str] = ()) -> None:
    """Raise a one-line RegistryError when ``kwargs`` holds a name ``factory`` does not take."""
    accepted = accepted_kwargs(factory)
    if accepted is None:
        return
    accepted -= set(exclude)
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise RegistryError(
            f"{what} does not take {', '.join(map(repr, unknown))}; it takes: "
            f"{', '.join(sorted(accepted)) or 'no arguments'}"
        )


class Registry(Generic[F]):
    """Named factories of one kind of extension, with built-ins, entry points and import paths.

    Args:
        kind: what an entry is, for messages ("encoder", "objective", ...).
        builtin_package: package whose every module is imported at the first lookup.
        entry_point_group: the distributions' entry-point group read at the first lookup.
        required_meta: metadata every registration must give (e.g. ``("modality",)``).
    """

    def __init__(
        self, kind: str, builtin_package: str, entry_point_group: str, required_meta: Sequence[str] = ()
    ) -> None:
        self.kind = kind
        self.builtin_package = builtin_package
        self.entry_point_group = entry_point_group
        self.required_meta = tuple(required_meta)
        self._entries: dict[str, Entry] = {}
        self._families: dict[str, Entry] = {}  # prefix -> entry whose factory takes the rest of the name first
        self._plugin_errors: dict[str, str] = {}
        self._resolved_paths: set[str] = set()  # import paths looked up in this process (see resolves_without_code)
        self._loaded = False

    # -- registering -----------------------------------------------------------------------

    def register(self, name: str | None = None, *, overwrite: bool = False, **meta: Any) -> Callable[[F], F]:
        """Decorator registering a factory under ``name`` (default: its ``__name__``)."""

        def decorate(factory: F) -> F:
            self.add(name or factory.__name__, factory, overwrite=overwrite, **meta)
            return factory

        return decorate

    def add(
        self, name: str, factory: Callable[..., Any], *, overwrite: bool = False, source: str | None = None, **meta: Any
    ) -> None:
        """Register ``factory`` under ``name`` (the non-decorator form)."""
        for key in self.required_meta:
            if not isinstance(meta.get(key), str) or not meta[key]:
                raise RegistryError(f"{self.kind} {name!r}: {key} must be a non-empty string")
        old = self._entries.get(name)
        if old is not None and not overwrite and not _same_definition(old.factory, factory):
            raise RegistryError(
                f"{self.kind} {name!r} is already registered by {old.source}; pick another name or pass overwrite=True"
            )
        source = source or getattr(factory, "__module__", "?")
        self._entries[name] = Entry(name, factory, source, _first_doc_line(factory), dict(meta))

    def register_family(self, prefix: str, **meta: Any) -> Callable[[F], F]:
        """Decorator for a factory serving every name that starts with ``prefix`` (e.g. "timm:");
        ``create(prefix + rest, **kw)`` calls ``factory(rest, **kw)``."""

        def decorate(factory: F) -> F:
            self._families[prefix] = Entry(
                prefix + "<name>", factory, factory.__module__, _first_doc_line(factory), dict(meta)
            )
            return factory

        return decorate

    # -- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.builtin_package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.builtin_package}.{info.name}")
        self._load_entry_points()

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group):
            dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
            try:
                factory = ep.load()
            except Exception as exc:  # a plugin's import error must not take the registry down
                self._plugin_errors[ep.name] = (
                    f"entry point {ep.name!r} ({ep.value}) of distribution {dist!r} failed to load: "
                    f"{exc.__class__.__name__}: {exc}"
                )
                continue
            known = self._entries.get(ep.name)
            if known is not None and known.factory is factory:
                continue  # importing it already registered it with the decorator
            meta = {key: getattr(factory, key, None) for key in self.required_meta}
            missing = [key for key, value in meta.items() if not isinstance(value, str)]
            if missing:
                self._plugin_errors[ep.name] = (
                    f"entry point {ep.name!r} of distribution {dist!r}: register {ep.value} with the "
                    f"{self.kind} decorator or give it the attribute(s) {', '.join(missing)}"
                )
                continue
            self.add(ep.name, factory, overwrite=True, source=f"entry point of {dist}", **meta)

    def plugin_errors(self) -> dict[str, str]:
        """Entry points that failed to load, by name."""
        self._load()
        return dict(self._plugin_errors)

    # -- looking up ------------------------------------------------------------------------

    def names(self, **meta: Any) -> list[str]:
        """Sorted registered names, optionally only those whose metadata match ``meta``."""
        self._load()
        return sorted(
            k for k, e in self._entries.items() if all(v is None or e.meta.get(mk) == v for mk, v in meta.items())
        )

    def families(self) -> dict[str, Entry]:
        self._load()
        return dict(self._families)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries

    def resolves_without_code(self, name: str) -> bool:
        """Whether looking ``name`` up runs no code it names: it is registered (a built-in, an
        entry point, a module already imported), a family member (``timm:<model>``), or an import
        path already looked up in this process (by the user's recipe or code). An import path
        seen first imports its module and calls whatever it names, so a name read from a file
        (an export, a run directory) is checked with this before it is looked up."""
        self._load()
        return (
            name in self._entries
            or name in self._plugin_errors
            or name in self._resolved_paths
            or any(name.startswith(prefix) for prefix in self._families)
        )

    def get(self, name: str) -> Entry:
        """The entry of ``name`` (also a family member or an import path); a one-line error
        listing the known names (and close matches) otherwise."""
        self._load()
        if name in self._entries:
            return self._entries[name]
        if name in self._plugin_errors:
            raise RegistryError(self._plugin_errors[name])
        for prefix, family in self._families.items():
            if name.startswith(prefix):
                rest = name[len(prefix) :]
                return Entry(name, _FamilyMember(family.factory, rest), family.source, family.description, family.meta)
        if ":" in name:
            return self._import_path_entry(name)
        close = difflib.get_close_matches(name, list(self._entries), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        broken = (
            f" ({len(self._plugin_errors)} plugin entry points failed to load: see `multivic encoders` or `multivic "
            "plugins`)"
            if self._plugin_errors
            else ""
        )
        families = "".join(f", {p}<name>" for p in self._families)
        raise RegistryError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(sorted(self._entries)) or 'none'}"
            f"{families}, or an import path package.module:factory{broken}"
        )

    def _import_path_entry(self, name: str) -> Entry:
        module_name, _, attr = name.partition(":")
        _working_dir_on_path()
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise RegistryError(
                f"{self.kind} {name!r}: cannot import module {module_name!r} ({exc.__class__.__name__}: {exc}); "
                "is it on PYTHONPATH or installed?"
            ) from None
        factory = getattr(module, attr, None)
        if not callable(factory):
            raise RegistryError(f"{self.kind} {name!r}: module {module_name!r} has no callable {attr!r}")
        meta = {key: getattr(factory, key, "") for key in self.required_meta}
        self._resolved_paths.add(name)
        return Entry(name, factory, module_name, _first_doc_line(factory), meta)

    def create(self, name: str, **kwargs: Any) -> Any:
        """Call the factory of ``name`` with keyword arguments checked against its signature."""
        entry = self.get(name)
        check_kwargs(f"{self.kind} {name!r}", entry.factory, kwargs)
        return entry.factory(**kwargs)


class _FamilyMember:
    """``factory(first, **kw)`` as a callable whose signature omits ``first`` (for family members)."""

    def __init__(self, factory: Callable[..., Any], first: str) -> None:
        self.factory, self.first = factory, first
        params = list(inspect.signature(factory).parameters.values())[1:]
        self.__signature__ = inspect.Signature(params)
        self.__doc__ = factory.__doc__

    def __call__(self, **kwargs: Any) -> Any:
        return self.factory(self.first, **kwargs)


def _working_dir_on_path() -> None:
    """Make project-local modules importable by dotted name, as ``python -m`` would, but *after*
    the installed packages: a folder of the user's must never hide an installed module."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())


def import_modules(names: Sequence[str]) -> None:
    """Import user modules (dotted names, or paths of .py files) so their decorators register."""
    for name in names:
        try:
            if name.endswith(".py"):
                _import_file(Path(name).expanduser().resolve())
            else:
                _working_dir_on_path()
                importlib.import_module(name)
        except RegistryError:
            raise
        except Exception as exc:
            raise ConfigError(f"imports: cannot import {name!r} ({exc.__class__.__name__}: {exc})") from None


def import_path_module(name: str) -> str | None:
    """The module of an import path ``package.module:factory``; None for a plain name."""
    return name.partition(":")[0] if ":" in name else None


def code_needed(names: Iterable[tuple[Registry, str]], imports: Sequence[str]) -> tuple[list[str], str] | None:
    """What building ``names`` (registry, name) read from a file would import, before any import.

    None when every name resolves without running code it names (see
    :meth:`Registry.resolves_without_code`), or when the ones that do not are unknown plain
    names and ``imports`` is empty (looking them up gives the usual unknown-name error).
    Otherwise (the modules: ``imports`` and the import paths' modules, "<kind> '<name>'" of the
    first such name).
    """
    modules: list[str] = list(imports)
    first = ""
    for reg, name in names:
        if reg.resolves_without_code(name):
            continue
        module = import_path_module(name)
        if module is None and not imports:
            continue
        if module is not None and module not in modules:
            modules.append(module)
        first = first or f"{reg.kind} {name!r}"
    return (modules, first) if first else None


def _import_file(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    module_name = f"multivic_user_{path.stem}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        del sys.modules[module_name]
        raise


# ------------------------------------------------------------------------------------------
# The four extension points.
# ------------------------------------------------------------------------------------------

# Encoders: factories returning an nn.Module with `modality` and `out_dim` (see create_encoder).
ENCODERS: Registry = Registry("encoder", "multivic.encoders", "multivic.encoders", required_meta=("modality",))
# Objectives: nn.Module classes whose forward(z_a, z_b) returns an ObjectiveOutput.
OBJECTIVES: Registry = Registry("objective", "multivic.objectives", "multivic.objectives")
# Modalities: Modality subclasses (views, collate, file reader, example input).
MODALITIES: Registry = Registry("modality", "multivic.modalities", "multivic.modalities")
# Data formats: DataFormat subclasses (modalities provided, split reader, options, protocol).
FORMATS: Registry = Registry("data format", "multivic.data.formats", "multivic.formats")


def register_encoder(name: str | None = None, *, modality: str, overwrite: bool = False) -> Callable[[F], F]:
    """Decorator registering an encoder factory (function or nn.Module class) under ``name``.

    Args:
        name: registry key, as written in recipes (default: the factory's name).
        modality: the kind of input the encoder reads ("image", "text", "waveform", ...).
        overwrite: replace an existing entry of the same name instead of raising.
    """
    return ENCODERS.register(name, overwrite=overwrite, modality=modality)


def register_encoder_family(prefix: str, *, modality: str) -> Callable[[F], F]:
    """Decorator for a factory serving every encoder name that starts with ``prefix`` ("timm:")."""
    return ENCODERS.register_family(prefix, modality=modality)


def register_objective(name: str | None = None, *, overwrite: bool = False) -> Callable[[F], F]:
    """Decorator registering an objective (an nn.Module class or factory) under ``name``."""
    return OBJECTIVES.register(name, overwrite=overwrite)


def register_modality(name: str | None = None, *, overwrite: bool = False) -> Callable[[F], F]:
    """Decorator registering a :class:`multivic.modalities.Modality` subclass under ``name``."""
    return MODALITIES.register(name, overwrite=overwrite)


def register_format(name: str | None = None, *, overwrite: bool = False) -> Callable[[F], F]:
    """Decorator registering a :class:`multivic.data.formats.DataFormat` subclass under ``name``."""
    return FORMATS.register(name, overwrite=overwrite)


def list_encoders(modality: str | None = None) -> list[str]:
    """Sorted names of the registered encoders, optionally only those of one modality."""
    return ENCODERS.names(modality=modality)


def encoder_spec(name: str) -> Entry:
    """The registry entry of encoder ``name`` (``.factory``, ``.meta["modality"]``, ``.source``)."""
    return ENCODERS.get(name)


def encoder_modality(name: str) -> str:
    """The modality an encoder declares at registration ("" for an import path: its module says)."""
    return str(encoder_spec(name).meta.get("modality") or "")


def create_encoder(name: str, **kwargs: Any) -> Any:
    """Build the encoder registered as ``name``; the module carries ``modality`` and ``out_dim``."""
    module = ENCODERS.create(name, **kwargs)
    _check_encoder_contract(name, encoder_modality(name), module)
    return module


def _check_encoder_contract(name: str, modality: str, module: Any) -> None:
    from torch import nn

    if not isinstance(module, nn.Module):
        raise RegistryError(f"encoder {name!r}: factory returned {type(module).__name__}, not an nn.Module")
    out_dim = getattr(module, "out_dim", None)
    if not isinstance(out_dim, int) or out_dim <= 0:
        raise RegistryError(f"encoder {name!r}: the module must set an integer attribute out_dim > 0")
    declared = getattr(module, "modality", None)
    if declared is None and not modality:
        raise RegistryError(f"encoder {name!r}: the module must set a string attribute modality (e.g. 'image')")
    if declared is None:
        module.modality = modality
    elif modality and declared != modality:
        raise RegistryError(f"encoder {name!r} is registered as modality {modality!r} but its module says {declared!r}")


def plugin_errors() -> dict[str, str]:
    """Entry points of every extension point that failed to load, by "<kind> <name>"."""
    return {
        f"{r.kind} {k}": v for r in (ENCODERS, OBJECTIVES, MODALITIES, FORMATS) for k, v in r.plugin_errors().items()
    }
