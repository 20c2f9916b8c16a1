"""``multivic config RECIPE``: every key of a resolved recipe, its value, whether it is a default,
and what it means; the same table generates the configuration reference of the docs.

The keys come from the one schema (:mod:`multivic.config`) and from the plug-ins a recipe uses:
``loss.*`` from the objective's signature, ``data.*`` from the data format's and its modalities'
option dataclasses. What a key means is read from where it is declared: the comment above a
schema field or a plug-in's option field, or the ``Args:`` section of an objective's docstring,
so nothing is written twice.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import typing
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from multivic.config import (
    REQUIRED,
    DataCommon,
    RecipeConfig,
    data_plugins,
    dataclass_fields,
    signature_fields,
    to_container,
)
from multivic.registry import OBJECTIVES
from multivic.trust import terminal_safe

REQUIRED_TEXT = "(required)"


@dataclass(frozen=True)
class KeyInfo:
    """One configuration key: its dotted name, value, default, type, meaning and who adds it
    (``schema``, ``objective vicreg``, ``format esc50``, ``modality image``)."""

    key: str
    value: Any
    default: Any
    type: str
    help: str
    source: str

    @property
    def is_default(self) -> bool:
        return self.value == self.default


@lru_cache(maxsize=None)
def field_comments(cls: type) -> dict[str, str]:
    """The comment lines right above each field of class ``cls`` (and a comment at the end of the
    field's line), by field name; empty when the source cannot be read."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    pending: list[str] = []
    lines = source.splitlines()
    body_indent = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            line = lines[token.start[0] - 1]
            if line.strip().startswith("#"):
                pending.append(token.string.lstrip("#").strip())
            continue
        if token.type == tokenize.NL and not lines[token.start[0] - 1].strip():
            pending = []  # a blank line ends a comment block
            continue
        if token.type != tokenize.NAME or token.start[0] == 1:
            continue
        line = lines[token.start[0] - 1]
        indent = len(line) - len(line.lstrip())
        if body_indent is None and indent > 0:
            body_indent = indent
        match = re.match(r"\s*(\w+)\s*:[^=]", line + " ")
        if indent == body_indent and token.start[1] == indent and match and match.group(1) == token.string:
            inline = line.split("#", 1)[1].strip() if "#" in line and not line.strip().startswith("#") else ""
            text = " ".join(pending + ([inline] if inline else []))
            comments.setdefault(token.string, text)
        if token.start[1] == indent:
            pending = []
    return comments


@lru_cache(maxsize=None)
def docstring_args(obj: Any) -> dict[str, str]:
    """The ``Args:`` section of ``obj``'s docstring (Google style), by argument name."""
    doc = inspect.getdoc(obj) or ""
    out: dict[str, str] = {}
    in_args, current = False, None
    for line in doc.splitlines():
        if line.strip() in ("Args:", "Arguments:", "Options:"):
            in_args = True
            continue
        if not in_args:
            continue
        if line and not line.startswith(" "):
            break  # the section ended
        match = re.match(r"\s{2,6}(\w+)(?:\s*\([^)]*\))?:\s*(.*)", line)
        if match and len(line) - len(line.lstrip()) <= 6:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif current and line.strip():
            out[current] += " " + line.strip()
    return out


def _type_name(hint: Any) -> str:
    if hint is Any:
        return "any"
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("NoneType", "None")


def _get(tree: Any, key: str) -> Any:
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _schema_keys(cls: type, prefix: str, values: dict[str, Any], defaults: Any) -> list[KeyInfo]:
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    out: list[KeyInfo] = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        hint = hints.get(f.name, Any)
        default = getattr(defaults, f.name)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            out += _schema_keys(hint, key + ".", values, default)
            continue
        value = _get(values, key)
        if dataclasses.is_dataclass(default):
            default = dataclasses.asdict(default)
        out.append(KeyInfo(key, value, default, _type_name(hint), comments.get(f.name, ""), "schema"))
    return out


def _option_keys(
    fields: list[tuple[str, Any, Any]], prefix: str, values: dict[str, Any], helps: dict[str, str], source: str
) -> list[KeyInfo]:
    out = []
    for name, hint, default in fields:
        shown = REQUIRED_TEXT if default is REQUIRED else default
        value = _get(values, prefix + name)
        out.append(KeyInfo(f"{prefix}{name}", value, shown, _type_name(hint), helps.get(name, ""), source))
    return out


def describe(cfg: RecipeConfig) -> list[KeyInfo]:
    """Every key of the resolved recipe ``cfg``, in the schema's order."""
    values = to_container(cfg)
    defaults = RecipeConfig()
    keys: list[KeyInfo] = []
    comments = field_comments(RecipeConfig)
    hints = typing.get_type_hints(RecipeConfig)
    for f in dataclasses.fields(RecipeConfig):
        hint = hints[f.name]
        if f.name == "loss":
            name = str(values["loss"]["name"])
            factory: Callable[..., Any] = OBJECTIVES.get(name).factory
            keys.append(KeyInfo("loss.name", name, "vicreg", "str", comments.get("loss", ""), "schema"))
            keys += _option_keys(
                signature_fields(factory), "loss.", values, docstring_args(factory), f"objective {name}"
            )
        elif f.name == "data":
            fmt, modality_classes = data_plugins(str(values["data"]["format"]))
            keys += _schema_keys(DataCommon, "data.", values, DataCommon())
            keys += _option_keys(
                dataclass_fields(fmt), "data.", values, field_comments(fmt), f"format {fmt.name or ''}".strip()
            )
            for cls in modality_classes:
                keys += _option_keys(
                    dataclass_fields(cls), "data.", values, field_comments(cls), f"modality {cls.name}"
                )
        elif dataclasses.is_dataclass(hint):
            keys += _schema_keys(hint, f"{f.name}.", values, getattr(defaults, f.name))
        else:
            default = getattr(defaults, f.name)
            help_text = comments.get(f.name, "")
            keys.append(KeyInfo(f.name, values.get(f.name), default, _type_name(hint), help_text, "schema"))
    return keys


def select(keys: list[KeyInfo], pattern: str | None) -> list[KeyInfo]:
    """The keys named ``pattern`` exactly, or under it as a prefix (``train``, ``data.image``)."""
    if not pattern:
        return keys
    prefix = pattern.rstrip(".")
    return [k for k in keys if k.key == prefix or k.key.startswith(prefix + ".") or k.key.startswith(prefix)]


def _show(value: Any) -> str:
    return terminal_safe("null" if value is None else repr(value) if isinstance(value, str) else value)


def format_table(keys: list[KeyInfo]) -> str:
    """One line per key: ``key = value`` and ``(default)`` or ``(set; default: ...)``."""
    width = max((len(k.key) for k in keys), default=0)
    lines = []
    for k in keys:
        where = "default" if k.is_default else f"set; default {_show(k.default)}"
        lines.append(f"{k.key.ljust(width)} = {_show(k.value)}  ({where})")
    return "\n".join(lines)


def format_explained(keys: list[KeyInfo]) -> str:
    """Each key with its type, default, who adds it and what it means."""
    blocks = []
    for k in keys:
        meaning = "    (no description)"
        if k.help:
            meaning = textwrap.fill(terminal_safe(k.help), 96, initial_indent="    ", subsequent_indent="    ")
        head = f"{k.key} = {_show(k.value)}\n    type {k.type}; default {_show(k.default)}; from the {k.source}\n"
        blocks.append(head + meaning)
    return "\n".join(blocks)


__all__ = ["KeyInfo", "describe", "docstring_args", "field_comments", "format_explained", "format_table", "select"]
