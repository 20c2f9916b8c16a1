"""Modalities, a registry extension point: everything about one kind of input.

A modality (image, waveform, text, ...) is a dataclass whose fields are its data-level options,
set in a recipe's ``data`` section (``data.image_size``, ``data.sample_rate``, ...). It gives:

- ``read_file(path)``: a file as the raw item its views take (a PIL image, a waveform [T]);
- ``train_view(**view)``: one side's random augmentation (a branch's ``view`` keys are its
  arguments); ``eval_view()``: the deterministic evaluation transform;
- ``collate()``: how a list of viewed items becomes an encoder's batch;
- ``embed_inputs(path)``: what ``multivic embed`` reads (files under a folder by default);
- ``example_batch(n)``: a tiny batch for the registry-wide encoder contract test;
- ``encode(value)`` / ``decode(data, ext, where)``: one sample's value as the bytes of a shard
  member and back (``member_extensions()`` names the members it reads), so ``multivic shard``
  and the ``webdataset`` format carry every registered modality, plug-ins included. A sample
  may hold several items of a modality (an image's captions): ``decode`` returns the whole
  value, ``items(value)`` lists its items and ``pick(value)`` draws the one a training pair
  uses. The default stores tensor values as ``<name>.npy`` (NumPy's format, never pickle);
  images, waveforms and captions keep their usual file types;
- optionally a fitted state learnt from the training data (a text vocabulary): ``fit``,
  ``save``, ``load`` and ``encoder_kwargs`` (e.g. the vocabulary size for the encoder).

Register one with ``@multivic.register_modality("name")`` on the class, in a module of its own.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from multivic.errors import DataError
from multivic.options import option_fields
from multivic.registry import MODALITIES, accepted_kwargs


def files_with_suffixes(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files under ``folder`` (recursively) whose suffix, lower-cased, is one of ``suffixes``; sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def identity(x: Any) -> Any:
    """The item unchanged (a picklable view or loader, so DataLoader workers can take it)."""
    return x


class Transformed(Dataset):
    """``transform(load(item))`` of each item of a sequence (paths, captions, ...)."""

    def __init__(self, items: Sequence[Any], load: Callable[[Any], Any], transform: Callable[[Any], Any]) -> None:
        self.items, self.load, self.transform = items, load, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        return self.transform(self.load(self.items[index]))

    def stored(self, index: int) -> Any:
        """Item ``index`` as stored: a Path item is the file ``load`` reads; others are loaded."""
        item = self.items[index]
        return item if isinstance(item, Path) else self.load(item)


@dataclasses.dataclass
class Modality:
    """Base class of modalities; subclasses are dataclasses whose fields are their options."""

    name: ClassVar[str] = ""
    # Suffixes of the files `multivic embed` reads for this modality from a folder.
    file_suffixes: ClassVar[tuple[str, ...]] = ()

    def options(self) -> dict[str, Any]:
        """The data-level options this modality was built with (recorded in exports)."""
        return {f.name: getattr(self, f.name) for f in option_fields(type(self))}

    def read_file(self, path: Path) -> Any:
        raise DataError(f"modality {self.name!r} reads no files")

    def train_view(self, **view: Any) -> Callable[[Any], Any]:
        raise NotImplementedError

    def view_keys(self) -> set[str] | None:
        """The keys a branch's ``view`` may hold (None: whatever train_view accepts). Modalities
        whose train_view forwards ``**view`` say which keys it forwards."""
        return accepted_kwargs(self.train_view)

    def eval_view(self) -> Callable[[Any], Any]:
        raise NotImplementedError

    def collate(self) -> Callable[[list[Any]], Any]:
        return default_collate

    def example_batch(self, batch_size: int = 2) -> Any:
        raise NotImplementedError

    def embed_inputs(self, path: Path) -> tuple[Dataset, list[str]]:
        """The evaluation-view items of every file under folder ``path``, and their names."""
        if not path.is_dir():
            raise DataError(
                f"--input {path} is not a folder of {self.name} files ({', '.join(self.file_suffixes[:3])}, ...)"
            )
        paths = files_with_suffixes(path, self.file_suffixes)
        if not paths:
            raise DataError(f"--input {path} holds no {self.name} files ({', '.join(self.file_suffixes[:3])}, ...)")
        return Transformed(paths, self.read_file, self.eval_view()), [str(p.relative_to(path)) for p in paths]

    def check_encoder(self, where: str, encoder: Any) -> None:
        """Refuse an encoder that cannot read this modality's views (ConfigError naming ``where``)."""

    # -- a sample's value as a shard member --------------------------------------------------

    # True when one sample holds several items of this modality (an image's captions): the
    # retrieval protocol then ranks those items against the other modality's single item.
    groups_items: ClassVar[bool] = False

    def member_extensions(self) -> tuple[str, ...]:
        """Extensions of the shard members this modality decodes; :meth:`encode` writes the first.

        The default, ``<name>.npy``, is unique per modality (webdataset splits a member name at
        its first dot: key ``000001``, extension ``sensor.npy``)."""
        return (f"{self.name}.npy",)

    def encode(self, value: Any) -> tuple[str, bytes]:
        """``(extension, bytes)`` of one sample's value; the default writes a tensor or array as
        ``.npy`` (values of other types need the modality's own encode)."""
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if not isinstance(value, np.ndarray) or value.dtype == object:
            raise DataError(
                f"modality {self.name!r} holds {type(value).__name__} values, which only tensors and arrays are "
                "written to shards by default: give the modality its own encode and decode"
            )
        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return self.member_extensions()[0], buffer.getvalue()

    def decode(self, data: bytes, ext: str, where: str) -> Any:
        """One member's bytes (extension ``ext``) as the value :meth:`encode` was given; a
        DataError naming ``where`` (the member and its shard) when they cannot be decoded."""
        try:
            buffer = io.BytesIO(data)
            major, _minor = np.lib.format.read_magic(buffer)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(buffer)  # the header only: nothing is allocated yet
            if dtype.hasobject or int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > len(data):
                # A tampered header asking for more than the member holds (or for pickled objects).
                raise ValueError(f"its header asks for {shape} of {dtype}, more than its {len(data)} bytes hold")
            return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
        except (ValueError, OSError, EOFError, TypeError) as exc:
            raise DataError(f"cannot read {self.name} {where}: {type(exc).__name__}: {exc}") from None

    def items(self, value: Any) -> list[Any]:
        """Every item a decoded value holds (an image's captions); by default the value itself."""
        return [value]

    def pick(self, value: Any) -> Any:
        """The item a training pair uses from a decoded value, drawn with torch's RNG (which the
        loader seeds per sample) when there are several."""
        return value

    # -- a state fitted on the training data (none by default) ---------------------------------

    needs_fitting: ClassVar[bool] = False

    def fit(self, corpus: Iterable[Any]) -> None:
        """Learn the state from the training split's raw items (a vocabulary, say)."""

    def save(self, folder: Path) -> None:
        """Write the fitted state into ``folder`` as data files (never pickle)."""

    def load(self, folder: Path) -> None:
        """Read the state written by :meth:`save`."""

    def is_fitted(self) -> bool:
        """Whether the fitted state is there (always, for modalities without one)."""
        return True

    def encoder_kwargs(self) -> dict[str, Any]:
        """Arguments the fitted state gives an encoder that accepts them (e.g. vocab_size)."""
        return {}


def check_at_most(name: str, value: float, high: float, why: str) -> None:
    """ValueError unless ``value`` <= ``high``: an option's upper bound, so that a recipe's typo
    or a tampered export (an image size of 10^6) is refused before it costs memory."""
    if not value <= high:
        raise ValueError(f"{name} must be at most {high:g} ({why}); got {value}")


def create_modality(name: str, options: dict[str, Any] | None = None) -> Modality:
    """The modality ``name`` with ``options`` (its dataclass fields); unknown options are refused."""
    modality = MODALITIES.create(name, **(options or {}))
    if not isinstance(modality, Modality):
        raise DataError(f"modality {name!r} is not a multivic.modalities.Modality")
    if not modality.name:
        modality.name = name
    return modality


__all__ = ["Modality", "Transformed", "create_modality", "files_with_suffixes", "identity"]
