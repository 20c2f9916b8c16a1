"""Options of plug-in dataclasses (modalities and data formats): their init fields.

A modality's or a format's options are the fields of its dataclass (a format's first field,
``root``, is where the data is, not an option). A recipe's ``data`` section holds the options of
its format and of the modalities it provides side by side, so these helpers pick each
plug-in's share out of it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

NOT_OPTIONS = ("root",)


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The option fields of a plug-in dataclass, in declaration order."""
    return [f for f in dataclasses.fields(cls) if f.init and f.name not in NOT_OPTIONS]


def options_for(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are options of ``cls``."""
    return {f.name: values[f.name] for f in option_fields(cls) if f.name in values}
