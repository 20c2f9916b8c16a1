"""``webdataset``: tar shards (WebDataset layout) read as a stream, for data past one disk.

A shard is a tar file whose members are grouped into samples by their name without the
extension (``000123.jpg``, ``000123.json``, ``000123.cls``); the extension says which modality
decodes a member (each modality names its own: :meth:`~multivic.modalities.Modality.member_extensions`):

- an image: ``jpg``, ``png``, ``webp``, ... (modality ``image``);
- captions: ``json`` (a list of captions, ``{"captions": [...]}``, or ``{"caption": "..."}``)
  or ``txt`` (one caption per line) (modality ``text``; training pairs an image with one of
  its captions drawn at random each epoch, as the ``coco`` format does);
- audio: ``wav``, ``flac``, ``ogg`` (modality ``waveform``; mixed to mono and resampled to
  ``data.sample_rate``);
- any other registered modality's own members (a plug-in's tensors as ``<name>.npy``);
- a label: ``cls`` (an integer).

Where the shards are: ``data.root`` is a folder of ``.tar`` files, normally written by
``multivic shard`` with its index ``shards.json`` (splits, shard sizes, class names, the
evaluation protocol); without an index, ``train-*.tar`` and ``val-*.tar`` (or every ``.tar`` as
the training split) are counted once at start. ``data.shards`` (and ``data.val_shards``) name
the shards instead: a brace pattern (``/data/cc3m/train-{000000..000331}.tar``), a list, or any
URL webdataset opens (``pipe:aws s3 cp s3://bucket/train-000000.tar -``, ``https://...``).

Training streams the shards (see :mod:`multivic.data.streaming` for which process and worker
reads what, and resuming); evaluation reads the val split (and, for the probes, the train split)
by random access: local shards through an index of their members (offsets, read with the
standard library's tarfile), other URLs by reading the split into memory once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence
from urllib.parse import urlparse

from torch.utils.data import Dataset

from multivic.data.formats import DataFormat, RetrievalSet
from multivic.data.streaming import Shard, StreamingSplit
from multivic.errors import DataError, MultivicError
from multivic.files import MAX_INDEX_BYTES, inside_folder, read_file_bytes
from multivic.modalities import Modality, create_modality
from multivic.options import resumable
from multivic.registry import MODALITIES, register_format
from multivic.trust import untrusted_urls

logger = logging.getLogger("multivic")

INDEX_FILE = "shards.json"
INDEX_VERSION = 1
LABEL_EXT = "cls"


# --------------------------------------------------------------------------------------------
# Reading shards (webdataset) and decoding samples


def expand_shards(spec: Any) -> list[str]:
    """A brace pattern, a ``::``-separated list of patterns, or a list of them, as URLs."""
    import webdataset as wds

    if spec is None:
        return []
    if isinstance(spec, (list, tuple)):
        return [u for s in spec for u in wds.shardlists.expand_urls(str(s))]
    return wds.shardlists.expand_urls(str(spec))


def is_local(url: str) -> bool:
    scheme = urlparse(url).scheme
    return scheme == "" or scheme == "file" or (len(scheme) == 1 and Path(url).exists())  # "C:" on Windows


def local_path(url: str) -> Path:
    return Path(urlparse(url).path) if urlparse(url).scheme == "file" else Path(url)


def read_raw_samples(url: str, errors: list[str]) -> Iterator[dict[str, Any]]:
    """The samples of one shard in order: dicts ``{"__key__", "__url__", ext: bytes}``.

    A damaged shard (truncated tar, a member that cannot be read, a URL that cannot be opened)
    stops early; the reason is appended to ``errors`` instead of raising."""
    import webdataset as wds

    def handler(exc: BaseException) -> bool:
        errors.append(f"{type(exc).__name__}: {str(exc.args[0]) if exc.args else exc}".splitlines()[0][:300])
        return False  # stop this shard: what follows a damaged tar header is not trustworthy

    try:
        stream = wds.gopen(url)
    except Exception as exc:  # noqa: BLE001 - any failure to open is reported as the shard's fault
        handler(exc)
        return
    try:
        files = wds.tariterators.tar_file_expander([{"url": url, "stream": stream}], handler=handler, eof_value=None)
        yield from wds.tariterators.group_by_keys(files, handler=handler)
    finally:
        try:
            stream.close()
        except Exception:  # noqa: BLE001 - a pipe whose command failed reports it on close
            if not errors:
                errors.append(f"the command of {url} failed")


def describe(raw: Mapping[str, Any]) -> str:
    return f"sample {raw.get('__key__', '?')} of shard {raw.get('__url__', '?')}"


def member_codecs(modalities: Mapping[str, Modality]) -> dict[str, Modality]:
    """Member extension -> the modality that decodes it; two modalities claiming one extension
    is a DataError naming both (a shard member must mean one thing)."""
    codecs: dict[str, Modality] = {}
    for modality in modalities.values():
        for ext in modality.member_extensions():
            other = codecs.setdefault(ext.lower(), modality)
            if other is not modality:
                raise DataError(
                    f"modalities {other.name!r} and {modality.name!r} both read shard members .{ext}: "
                    "give one of them other member_extensions()"
                )
    return codecs


def members_by_modality(raw: Mapping[str, Any], codecs: Mapping[str, Modality]) -> dict[str, tuple[str, bytes]]:
    """``{modality name: (extension, bytes)}`` of a raw sample's members (the first member of
    each modality; members no modality reads, and the label, are left out)."""
    found: dict[str, tuple[str, bytes]] = {}
    for ext, data in raw.items():
        modality = codecs.get(ext) if not ext.startswith("__") else None
        if modality is not None and modality.name not in found:
            found[modality.name] = (ext, bytes(data))
    return found


def decode_member(raw: Mapping[str, Any], modality: Modality, ext: str, data: bytes) -> Any:
    """One member decoded by its modality. A member is data from elsewhere: one that would
    exhaust memory (a .npy header declaring a terabyte) or the stack (JSON nested 10^5 deep) is a
    DataError naming it, like any other damaged member, never a traceback."""
    return decode_checked(modality, data, ext, f"{raw.get('__key__')}.{ext} in shard {raw.get('__url__')}")


def decode_checked(modality: Modality, data: bytes, ext: str, where: str) -> Any:
    """``modality.decode``, with a member that would exhaust memory or the stack a DataError naming
    ``where`` (shard members and the files ``multivic shard`` copies alike)."""
    try:
        return modality.decode(data, ext, where)
    except MemoryError:
        raise DataError(f"cannot read {modality.name} {where}: it asks for more memory than there is") from None
    except RecursionError:
        raise DataError(f"cannot read {modality.name} {where}: it is nested too deeply") from None


# Labels are class indices: beyond this many classes a .cls is damaged (the class names list is
# built from the largest label when shards.json names none).
MAX_CLASSES = 1 << 20


def label_of(raw: Mapping[str, Any], num_classes: int | None = None) -> int:
    """The sample's .cls as a class index in [0, num_classes) (known class names) or
    [0, MAX_CLASSES); a DataError naming the sample otherwise (a probe would crash on it)."""
    try:
        label = int(bytes(raw[LABEL_EXT]).decode("ascii").strip())
    except KeyError:
        raise DataError(f"{describe(raw)} has no label (.cls)") from None
    except ValueError:
        raise DataError(f"{describe(raw)}: its .cls is not an integer") from None
    bound = MAX_CLASSES if num_classes is None else num_classes
    if not 0 <= label < bound:
        raise DataError(
            f"{describe(raw)}: its .cls {str(label)[:24]} is not a class index in [0, {bound}): "
            "the shard is damaged, or shards.json lists too few classes"
        )
    return label


# --------------------------------------------------------------------------------------------
# A split of shards: a stream for training, random access for evaluation


class ShardSplit(StreamingSplit, Dataset):
    """One split's shards. Items (random access, and each streamed sample once decoded) are
    sample dicts ``{modality name: value, ..., "label": y}`` with the modalities the sample has
    (an image's captions: one drawn at random, see :meth:`Modality.pick`)."""

    def __init__(
        self,
        shards: Sequence[Shard],
        modalities: Mapping[str, Modality],
        classes: list[str] | None,
        shuffle_buffer: int,
        epoch_samples: int | None,
    ) -> None:
        self.shards = list(shards)
        self.modalities = dict(modalities)
        self.codecs = member_codecs(self.modalities)
        self.shuffle_buffer, self.epoch_samples = shuffle_buffer, epoch_samples
        self._classes = classes
        self._members: list[dict[str, Any]] | None = None  # random access, built on first use

    # -- streaming ------------------------------------------------------------------------------

    def read_shard(self, shard: Shard, errors: list[str]) -> Iterator[dict[str, Any]]:
        return read_raw_samples(shard.url, errors)

    def decode(self, raw: Mapping[str, Any], every_item: bool = False) -> dict[str, Any]:
        """A raw sample as a sample dict; ``every_item``: each modality's whole value (every
        caption) instead of the one a training pair uses."""
        sample: dict[str, Any] = {}
        for name, (ext, data) in members_by_modality(raw, self.codecs).items():
            modality = self.modalities[name]
            value = decode_member(raw, modality, ext, data)
            sample[name] = value if every_item else modality.pick(value)
        if LABEL_EXT in raw:
            sample["label"] = label_of(raw, self._num_classes())
        return sample

    def _num_classes(self) -> int | None:
        return len(self._classes) if self._classes is not None else None

    def describe(self, raw: Any) -> str:
        return describe(raw)

    # -- random access (evaluation) ---------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._index()) if self._members is not None else self.num_samples

    def _index(self) -> list[dict[str, Any]]:
        if self._members is None:
            members: list[dict[str, Any]] = []
            for shard in self.shards:
                members.extend(_member_index(shard.url) if is_local(shard.url) else _in_memory(shard.url))
            self._members = members
        return self._members

    def raw(self, index: int, only: Sequence[str] | None = None) -> dict[str, Any]:
        """Sample ``index``'s members as bytes (only the extensions ``only``, when given)."""
        entry = self._index()[index]
        if "__offsets__" not in entry:
            return entry
        out = {"__key__": entry["__key__"], "__url__": entry["__url__"]}
        with open(local_path(entry["__url__"]), "rb") as f:
            for ext, (offset, size) in entry["__offsets__"].items():
                if only is not None and ext not in only:
                    continue
                f.seek(offset)
                out[ext] = f.read(size)
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.decode(self.raw(index))

    def stored(self, index: int) -> dict[str, Any]:
        return self.decode(self.raw(index), every_item=True)

    def value_at(self, index: int, modality: str) -> Any:
        """Sample ``index``'s whole value of ``modality`` (every caption), reading only its member."""
        raw = self.raw(index, self.modalities[modality].member_extensions())
        found = members_by_modality(raw, self.codecs)
        if modality not in found:
            raise DataError(
                f"{describe(raw)} has no {modality} member "
                f"(.{', .'.join(self.modalities[modality].member_extensions()[:3])})"
            )
        ext, data = found[modality]
        return decode_member(raw, self.modalities[modality], ext, data)

    @property
    def targets(self) -> list[int]:
        return [label_of(self.raw(i, (LABEL_EXT,)), self._num_classes()) for i in range(len(self))]

    @property
    def classes(self) -> list[str]:
        if self._classes is not None:
            return list(self._classes)
        return [str(i) for i in range(max(self.targets, default=-1) + 1)]


def _member_index(url: str) -> list[dict[str, Any]]:
    """The samples of a local shard as member offsets (headers only; the data is read on access)."""
    from webdataset.tariterators import base_plus_ext

    samples: list[dict[str, Any]] = []
    try:
        with tarfile.open(local_path(url), "r:") as tar:
            for info in tar:
                if not info.isreg():
                    continue
                key, ext = base_plus_ext(info.name)
                if key is None:
                    continue
                if not samples or samples[-1]["__key__"] != key:
                    samples.append({"__key__": key, "__url__": url, "__offsets__": {}})
                samples[-1]["__offsets__"][ext.lower()] = (info.offset_data, info.size)
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"cannot read shard {url}: {type(exc).__name__}: {exc}") from None
    return samples


def _in_memory(url: str) -> list[dict[str, Any]]:
    errors: list[str] = []
    samples = list(read_raw_samples(url, errors))
    if errors:
        raise DataError(f"cannot read shard {url}: {errors[0]}")
    return samples


def count_samples(urls: Sequence[str]) -> list[Shard]:
    """Shards with their sample counts, counted by reading them (no index)."""
    out = []
    for url in urls:
        errors: list[str] = []
        n = sum(1 for _ in read_raw_samples(url, errors))
        if errors:
            raise DataError(f"cannot count the samples of shard {url}: {errors[0]}")
        out.append(Shard(url, n))
    return out


# --------------------------------------------------------------------------------------------


class _EveryRegisteredModality:
    """``modalities`` of the format: every registered modality (plug-ins included), since a
    shard member of any of them can be read; the recipe's branches pick the ones they use."""

    def __get__(self, obj: Any, cls: type) -> tuple[str, ...]:
        return tuple(MODALITIES.names())


def registered_codecs() -> dict[str, Modality]:
    """:func:`member_codecs` of every registered modality with its default options (those that
    need options without defaults are left out)."""
    modalities = {}
    for name in MODALITIES.names():
        try:
            modalities[name] = create_modality(name)
        except (MultivicError, TypeError, ValueError):
            continue
    return member_codecs(modalities)


class _ProtocolFromShards:
    """``protocol`` of the format: on an instance, the shards' (from the index, or retrieval when
    a sample carries captions beside an image or audio, else classification); on the class,
    the default, classification."""

    def __get__(self, obj: Any, cls: type) -> str:
        return "classification" if obj is None else obj.index_info()["protocol"]


TAR_BLOCK = 512  # every tar member starts with a header block of this size


def read_index(path: Path) -> dict[str, Any]:
    """``shards.json``, checked like user input: each split a list of ``{"url", "samples"}``
    whose ``url`` is a shard file inside the index's folder and whose ``samples`` that file can
    hold; class names a list of strings. A damaged or tampered index is a DataError naming it.

    Entries are file names, never commands or remote URLs: streaming those is the user's own
    choice, made with ``data.shards`` on the command line or in the recipe."""
    what = f"shard index {path}"
    try:
        data = read_file_bytes(path, "write the shards with multivic shard", MAX_INDEX_BYTES, DataError)
        index = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise DataError(f"{what} is not valid JSON ({exc}): write it again with multivic shard") from None
    if not isinstance(index, dict) or not isinstance(index.get("splits"), dict):
        raise DataError(f"{what} is not a shard index written by multivic shard (no 'splits')")
    classes = index.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise DataError(f"{what}: 'classes' must be a list of class names")
    _check_source(index.get("source"), what)
    protocol = index.get("protocol")
    if protocol is not None and not (isinstance(protocol, str) and re.fullmatch(r"[a-z_]{1,40}", protocol)):
        raise DataError(
            f"{what}: 'protocol' must be an evaluation protocol's name (classification, retrieval, ...), "
            f"not {str(protocol)[:40]!r}"
        )
    named: set[str] = set()
    for split, shards in index["splits"].items():
        if not isinstance(shards, list):
            raise DataError(f"{what}: split {str(split)[:40]!r} is not a list of shards")
        for n, shard in enumerate(shards):
            entry = f"{what}: splits.{split}[{n}]"
            if not isinstance(shard, dict) or not isinstance(shard.get("url"), str):
                raise DataError(f"{entry} has no 'url' (a shard file name)")
            name = shard["url"]
            if untrusted_urls(name) or "/" in name or "\\" in name:
                raise DataError(
                    f"{entry} names {name[:80]!r}: index entries are shard files inside {path.parent}; "
                    "to stream from elsewhere (pipe:, https:) name the shards yourself with data.shards=..."
                )
            if name in named:  # a shard listed twice is read twice: its samples count double
                raise DataError(f"{entry} names {name[:80]!r} again: each shard is listed once; write the index again")
            named.add(name)
            file = inside_folder(path.parent, name, entry)
            samples = shard.get("samples")
            if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
                raise DataError(f"{entry}: 'samples' must be a count of samples, not {str(samples)[:40]!r}")
            size = file.stat().st_size if file.is_file() else None
            if size is None:
                raise DataError(f"{entry}: shard {file} does not exist or is not a regular file")
            if samples * TAR_BLOCK > size:
                raise DataError(
                    f"{entry}: {samples} samples cannot fit in {name} ({size} bytes): the index is damaged; "
                    "write the shards again with multivic shard"
                )
    return index


def _check_source(source: Any, what: str) -> None:
    """The index's record of its source (``{"format", "root", "options": {...}}``): a mapping whose
    options are a mapping and whose ``test_fold``, when there, is a fold number."""
    options = source.get("options") if isinstance(source, dict) else None
    if source is not None and (not isinstance(source, dict) or not isinstance(options or {}, dict)):
        raise DataError(f"{what}: 'source' must be an object with 'options': write the index again with multivic shard")
    fold = (options or {}).get("test_fold")
    if fold is not None and (isinstance(fold, bool) or not isinstance(fold, int)):
        raise DataError(f"{what}: source.options.test_fold must be a fold number, not {str(fold)[:40]!r}")


@register_format("webdataset")
@dataclass
class WebDatasetFormat(DataFormat):
    """Tar shards (WebDataset): members of any registered modality and labels, by extension,
    streamed for training, split over processes and workers."""

    name = "webdataset"
    modalities = _EveryRegisteredModality()  # type: ignore[assignment]
    protocol = _ProtocolFromShards()  # type: ignore[assignment]
    # Training shards instead of data.root's: a brace pattern, a list, or URLs (pipe:, https:).
    shards: Any = resumable(None)
    # Evaluation shards with data.shards (default: data.root's val split).
    val_shards: Any = resumable(None)
    # Samples held by each worker's shuffle buffer (1: the shards' own order, after shuffling shards).
    shuffle_buffer: int = 1000
    # An infinite stream: shards drawn with replacement, an epoch being this many samples (null:
    # one pass over the shards).
    epoch_samples: Optional[int] = None
    # Evaluation: each image's first k captions (5, as VSE++), null for all of them (any
    # modality whose samples hold several items: its first k).
    captions_per_image: Optional[int] = 5
    # Fold-based sources (esc50, audio_csv): the held-out fold the val shards hold, chosen when
    # they were written; set (as fold-based recipes do), it must match shards.json's.
    test_fold: Optional[int] = None

    def __post_init__(self) -> None:
        if self.shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be >= 1; got {self.shuffle_buffer}")
        if self.epoch_samples is not None and self.epoch_samples < 1:
            raise ValueError(f"epoch_samples must be >= 1 or null; got {self.epoch_samples}")
        if self.captions_per_image is not None and self.captions_per_image < 1:
            raise ValueError(f"captions_per_image must be >= 1 or null; got {self.captions_per_image}")
        self._info: dict[str, Any] | None = None

    def index_info(self) -> dict[str, Any]:
        """Splits as Shard lists, class names, protocol: from the index, or counted."""
        if self._info is not None:
            return self._info
        root = Path(self.root) if self.root is not None else None
        index = read_index(root / INDEX_FILE) if root is not None and os.path.lexists(root / INDEX_FILE) else None
        sizes: dict[str, int] = {}
        splits: dict[str, list[Shard]] = {}
        if index is not None:
            for split, shards in index["splits"].items():
                splits[split] = [Shard(str(root / s["url"]), s["samples"]) for s in shards]
                sizes.update({Path(urlparse(s.url).path).name: s.samples for s in splits[split]})
        elif root is not None and self.shards is None:
            tars = sorted(inside_folder(root, p.name, f"shard {p}") for p in root.glob("*.tar"))
            if not tars:
                raise DataError(
                    f"data.root {root} holds no .tar shards and no {INDEX_FILE}: "
                    "write shards with `multivic shard`, or set data.shards=PATTERN"
                )
            val = [p for p in tars if p.name.startswith("val")]
            train = [p for p in tars if p.name.startswith("train")] or [p for p in tars if p not in val]
            logger.warning(
                "%s has no %s: counting the samples of %d shards (multivic shard writes the index)",
                root,
                INDEX_FILE,
                len(tars),
            )
            splits = {"train": count_samples([str(p) for p in train]), "val": count_samples([str(p) for p in val])}
        for split, spec in (("train", self.shards), ("val", self.val_shards)):
            urls = expand_shards(spec)
            if urls:
                known = [sizes.get(Path(urlparse(u).path).name) for u in urls]
                splits[split] = (
                    [Shard(u, n) for u, n in zip(urls, known)]
                    if all(k is not None for k in known)
                    else count_samples(urls)
                )  # type: ignore[arg-type]
        if not splits.get("train"):
            raise DataError("no training shards: set data.root to a folder of shards or data.shards=PATTERN")
        written = ((index or {}).get("source") or {}).get("options", {}).get("test_fold")
        if self.test_fold is not None and written is not None and int(written) != self.test_fold:
            raise DataError(
                f"data.test_fold={self.test_fold}, but the val shards in {root} hold fold {written}: write shards with "
                f"test_fold={self.test_fold} (multivic shard SRC OUT test_fold={self.test_fold}) or set "
                f"data.test_fold={written}"
            )
        protocol = (index or {}).get("protocol") or self._detect_protocol(splits)
        self._info = {"splits": splits, "classes": (index or {}).get("classes"), "protocol": protocol}
        return self._info

    @staticmethod
    def _detect_protocol(splits: dict[str, list[Shard]]) -> str:
        """Retrieval when a sample carries members of two modalities (an image and its captions),
        classification when it has a label, else unlabelled."""
        first = splits.get("val") or splits["train"]
        for raw in read_raw_samples(first[0].url, []):
            if len(members_by_modality(raw, registered_codecs())) >= 2:
                return "retrieval"
            return "classification" if LABEL_EXT in raw else "unlabelled"
        return "classification"

    def split(self, split: str, modalities: Mapping[str, Modality]) -> ShardSplit:
        info = self.index_info()
        shards = info["splits"].get(split)
        if not shards:
            raise DataError(
                f"the shards have no {split!r} split: write them with `multivic shard`, "
                f"or set data.{'val_shards' if split == 'val' else 'shards'}=PATTERN"
            )
        return ShardSplit(shards, modalities, info["classes"], self.shuffle_buffer, self.epoch_samples)

    def corpus(self, modality: str, modalities: Mapping[str, Modality]) -> Iterator[Any]:
        """Every item of ``modality`` in the training shards (every caption of every image)."""
        split = self.split("train", modalities)
        codec = split.modalities[modality]
        for shard in split.shards:
            for raw in read_raw_samples(shard.url, []):
                found = members_by_modality(raw, split.codecs)
                if modality in found:
                    yield from codec.items(decode_member(raw, codec, *found[modality]))

    def retrieval_set(self, modalities: Mapping[str, Modality]) -> RetrievalSet:
        """The val shards' pairs: the modality with one item per sample (images) against the one
        whose samples hold several (captions, the first ``captions_per_image`` of each)."""
        val = self.split("val", modalities)
        if len(val) == 0:
            raise DataError("the val shards hold no samples")
        present = list(members_by_modality(val.raw(0), val.codecs))
        if len(present) != 2:
            raise DataError(
                f"retrieval needs samples of two modalities; {describe(val.raw(0))} has {present or 'none'}"
            )
        first, second = sorted(present, key=lambda m: (val.modalities[m].groups_items, present.index(m)))
        codec = val.modalities[second]
        items: list[Any] = []
        index: list[int] = []
        for i in range(len(val)):
            kept = codec.items(val.value_at(i, second))[: self.captions_per_image]
            items.extend(kept)
            index.extend([i] * len(kept))
        return RetrievalSet((first, SplitMembers(val, first)), (second, items), index)


class SplitMembers(Dataset):
    """The ``modality`` values of a split's samples, by random access (retrieval's first side)."""

    def __init__(self, split: ShardSplit, modality: str) -> None:
        self.split, self.modality = split, modality

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> Any:
        return self.split.value_at(index, self.modality)


__all__ = [
    "ShardSplit",
    "SplitMembers",
    "WebDatasetFormat",
    "decode_checked",
    "expand_shards",
    "member_codecs",
    "members_by_modality",
    "read_index",
    "read_raw_samples",
]
