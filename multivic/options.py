"""Options of plug-in dataclasses (modalities and data formats): their init fields.

A modality's or a format's options are the fields of its dataclass (a format's first field,
``root``, is where the data is, not an option). A recipe's ``data`` section holds the options of
its format and of the modalities it provides side by side, so these helpers pick each
plug-in's share out of it.

Whether a key may change when a run is resumed is declared on its field with :func:`resumable`,
here for the plug-ins' options as for the recipe schema's own keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

NOT_OPTIONS = ("root",)

# The dataclass-field metadata entry that :func:`resumable` sets.
RESUMABLE = "resumable"


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The option fields of a plug-in dataclass, in declaration order."""
    return [f for f in dataclasses.fields(cls) if f.init and f.name not in NOT_OPTIONS]


def options_for(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are options of ``cls``."""
    return {f.name: values[f.name] for f in option_fields(cls) if f.name in values}


def resumable(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose value may change between a run and its resumption.

    For keys that say how long a run goes, how it is watched and evaluated, or where its data is
    mounted, never what is trained: ``multivic train`` refuses to resume a run directory when any
    other key differs. On a field holding a section (a dataclass), every key under it may change.
    """
    return dataclasses.field(default=default, default_factory=default_factory, metadata={RESUMABLE: True})


def is_resumable(f: dataclasses.Field) -> bool:
    """Whether ``f`` was declared with :func:`resumable`."""
    return bool(f.metadata.get(RESUMABLE, False))
