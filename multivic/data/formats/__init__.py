"""Data formats, a registry extension point: how a data set on disk becomes samples.

A format is a dataclass whose first field is ``root`` (the folder) and whose other fields are
its options, set in a recipe's ``data`` section (``data.test_fold``, ``data.year``, ...). It
declares the modalities it provides, the evaluation protocol that applies ("classification":
labelled train/val splits; "retrieval": paired items of two modalities), whether it has folds
(then ``test_fold`` is an option and cross-validation can hold out each fold in turn) and the
built-in data sets it can write. ``split(name, modalities)`` returns a Dataset whose items are
dicts ``{modality name: raw item, ..., "label": int}`` (no label for retrieval data), read with
the given :class:`~multivic.modalities.Modality` instances. Training pairs are built from these
items the same way for every format (:class:`PairedViews`). ``stored(split, modalities)`` is the
split as ``multivic shard`` writes it (whole values, or the files they are read from), which
every format gets from its splits.

Register one with ``@multivic.register_format("name")`` on the class, in a module of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Protocol, Sequence, runtime_checkable

from torch.utils.data import Dataset

from multivic.errors import DataError
from multivic.modalities import Modality
from multivic.options import option_fields
from multivic.registry import FORMATS

Sample = dict[str, Any]


@runtime_checkable
class FileBacked(Protocol):
    """A reader whose item ``index`` is read from one file (kept verbatim in shards)."""

    def path(self, index: int) -> Path: ...


@runtime_checkable
class StoredSamples(Protocol):
    """A split that says how each sample is stored, when that differs from its items: a
    modality's whole value (every caption of an image, not the one drawn for a training pair)
    or the :class:`~pathlib.Path` of the file the value is read from."""

    def stored(self, index: int) -> Sample: ...


def stored_item(items: Sequence[Any], index: int) -> Any:
    """Item ``index`` as stored: the file it is read from when there is one, else the item."""
    return items.stored(index) if isinstance(items, StoredSamples) else items[index]


@dataclass
class RetrievalSet:
    """Evaluation data of the retrieval protocol: raw items of two modalities and which item of
    the first each item of the second belongs to (images and their captions, say)."""

    first: tuple[str, Sequence[Any]]  # (modality, items), e.g. ("image", N images)
    second: tuple[str, Sequence[Any]]  # (modality, items), e.g. ("text", M captions)
    second_to_first: list[int]  # [M] index into first


@dataclass
class DataFormat:
    """Base class of data formats; subclasses are dataclasses: ``root`` then their options."""

    root: Path
    name: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ()
    protocol: ClassVar[str] = "classification"
    # Fold numbers when the data set is split into folds (the `test_fold` option picks val).
    folds: ClassVar[tuple[int, ...]] = ()
    # Built-in data sets this format can write: name -> writer(folder).
    builtins: ClassVar[dict[str, Callable[[Path], Any]]] = {}
    # True for a format that reads almost any folder (unlabelled files): when the format of a folder
    # is detected (multivic shard without --format), such formats are tried after the others.
    reads_any_folder: ClassVar[bool] = False

    def split(self, split: str, modalities: Mapping[str, Modality]) -> Dataset:
        """Split "train" or "val" as a Dataset of sample dicts (see the module docstring)."""
        raise NotImplementedError

    def corpus(self, modality: str, modalities: Mapping[str, Modality]) -> Iterable[Any]:
        """The training split's raw items of ``modality``, to fit a modality's state on
        (a vocabulary). Formats whose items are cheap to list without loading override it."""
        train = self.split("train", modalities)
        return (train[i][modality] for i in range(len(train)))  # type: ignore[arg-type]

    def retrieval_set(self, modalities: Mapping[str, Modality]) -> RetrievalSet:
        """The evaluation data of the retrieval protocol."""
        raise DataError(f"data format {self.name!r} has no retrieval evaluation")

    def check_evaluation_data(self, modalities: Mapping[str, Modality]) -> None:
        """Read the evaluation data's index now (not after training), raising on a broken one."""
        if self.protocol == "retrieval":
            self.retrieval_set(modalities)
        else:
            self.split("val", modalities)

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in option_fields(type(self))}

    def stored(self, split: str, modalities: Mapping[str, Modality]) -> tuple[Iterator[Sample], int, list[str] | None]:
        """The split as ``multivic shard`` writes it, its size and its class names: per sample,
        each modality's whole value or the Path of its file (:class:`StoredSamples`), and the
        label. The val split of a retrieval format is its evaluation set, each first-side item
        with the second-side items that belong to it (an image with its captions)."""
        if self.protocol == "retrieval" and split == "val":
            rs = self.retrieval_set(modalities)
            (first, items), (second, others) = rs.first, rs.second
            groups: list[list[Any]] = [[] for _ in range(len(items))]
            for item, i in zip(others, rs.second_to_first):
                groups[i].append(item)
            return ({first: stored_item(items, i), second: groups[i]} for i in range(len(items))), len(items), None
        samples = self.split(split, modalities)
        classes = list(getattr(samples, "classes", None) or []) or None
        n = len(samples)  # type: ignore[arg-type]
        return (stored_item(samples, i) for i in range(n)), n, classes  # type: ignore[arg-type]


@dataclass
class DataSetup:
    """A recipe's data: the format over its root, and the modalities it provides, with options."""

    format: DataFormat
    modalities: dict[str, Modality]


class LabelledSamples(Dataset):
    """Sample dicts ``{modality: x, "label": y}`` over a reader whose items are ``(x, y)``.

    Keeps the reader's ``classes`` (class names) and ``targets`` (labels) for the protocols.
    """

    def __init__(self, reader: Dataset, modality: str) -> None:
        self.reader, self.modality = reader, modality
        self.classes: list[str] = list(getattr(reader, "classes"))
        self.targets: list[int] = list(getattr(reader, "targets"))

    def __len__(self) -> int:
        return len(self.reader)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Sample:
        x, y = self.reader[index]
        return {self.modality: x, "label": y}

    def stored(self, index: int) -> Sample:
        if isinstance(self.reader, FileBacked):
            return {self.modality: self.reader.path(index), "label": self.targets[index]}
        return self[index]


class PairedViews(Dataset):
    """``(view_a(sample[modality_a]), view_b(sample[modality_b]))`` of each sample: the training
    pairs of every format. The two sides may read the same modality (two augmentations of one
    image) or two (an image and its caption)."""

    def __init__(self, samples: Dataset, side_a: tuple[str, Callable], side_b: tuple[str, Callable]) -> None:
        self.samples, self.side_a, self.side_b = samples, side_a, side_b

    def __len__(self) -> int:
        return len(self.samples)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        sample = self.samples[index]
        (mod_a, view_a), (mod_b, view_b) = self.side_a, self.side_b
        return view_a(sample[mod_a]), view_b(sample[mod_b])


class LabelledViews(Dataset):
    """``(view(sample[modality]), label)``: a classification split as the probes read it."""

    def __init__(self, samples: Dataset, modality: str, view: Callable) -> None:
        self.samples, self.modality, self.view = samples, modality, view
        self.classes = getattr(samples, "classes")

    def __len__(self) -> int:
        return len(self.samples)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        sample = self.samples[index]
        return self.view(sample[self.modality]), sample["label"]


def builtin_formats() -> dict[str, str]:
    """Built-in data set name -> the format that writes it, over every registered format."""
    return {b: n for n in FORMATS.names() for b in getattr(FORMATS.get(n).factory, "builtins", {})}


__all__ = [
    "DataFormat",
    "DataSetup",
    "FileBacked",
    "LabelledSamples",
    "LabelledViews",
    "PairedViews",
    "RetrievalSet",
    "Sample",
    "StoredSamples",
    "builtin_formats",
    "stored_item",
]
