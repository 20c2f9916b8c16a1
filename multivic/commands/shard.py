"""``multivic shard SRC OUT``: any registered data format (or a built-in data set) as tar shards.

Writes ``OUT/train-000000.tar, ...``, ``OUT/val-000000.tar, ...`` (WebDataset layout: members
``<key>.<ext>``) and ``OUT/shards.json``, the index the ``webdataset`` format reads (each
shard's name and sample count, class names, modalities, the evaluation protocol, the source).

What goes in a sample: each modality's member, as the modality encodes it
(:meth:`~multivic.modalities.Modality.encode`: images as ``png``, audio as float ``wav``, an
image's every caption as ``json``, a plug-in's tensors as ``<name>.npy``), and the label as
``cls``. A value read from a file whose type the modality reads as a member (``jpg``,
``flac``, ...) is copied verbatim, once it has decoded as that modality. The val split of a
retrieval format is its evaluation set (each image with the captions the evaluation uses,
``captions_per_image``); a fold-based format's val split is its ``test_fold``.

OUT must not exist (or be an empty folder); everything is written into a temporary folder
beside it, renamed to OUT when complete, so an interrupted run leaves no half-written OUT.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import yaml

from multivic.data.formats import DataFormat, builtin_formats
from multivic.data.formats.webdataset import INDEX_FILE, INDEX_VERSION, decode_checked, member_codecs
from multivic.errors import ConfigError, DataError, MultivicError
from multivic.files import MAX_INDEX_BYTES, leads_outside, read_file_bytes
from multivic.modalities import Modality, create_modality
from multivic.options import options_for
from multivic.registry import FORMATS, MODALITIES, import_modules

logger = logging.getLogger("multivic")

SHARD_FORMAT = "webdataset"


def parse_shard_size(text: str) -> tuple[int | None, int | None]:
    """``"1000"`` -> (1000 samples, None); ``"256MB"`` -> (None, bytes)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--shard-size {text!r} is not a number of samples (1000) or a size (256MB)")
    if not m.group(2) and not str(text).strip().lower().endswith("b"):
        return int(float(m.group(1))), None
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
    return None, int(float(m.group(1)) * scale)


def _source(src: str, format_name: str | None, options: dict[str, Any]) -> tuple[DataFormat, dict[str, Modality]]:
    """The source format over SRC (a folder, or a built-in data set's name), detected unless named."""
    from multivic.data.builtin.location import builtin_root, ensure_written

    path = Path(src).expanduser()
    builtins = builtin_formats()
    if not path.exists() and src in builtins:
        writer = FORMATS.get(builtins[src]).factory.builtins[src]
        path = ensure_written(builtin_root(f"{src}-v1"), writer)
        format_name = format_name or builtins[src]
    if not path.exists():
        raise DataError(f"{src} is neither a folder nor a built-in data set ({', '.join(sorted(builtins))})")
    detectable = [n for n in FORMATS.names() if n != SHARD_FORMAT]
    # Formats that read almost any folder (unlabelled files) are tried last.
    detectable.sort(key=lambda n: bool(FORMATS.get(n).factory.reads_any_folder))
    names = [format_name] if format_name else detectable
    reasons = []
    for name in names:
        cls = FORMATS.get(name).factory
        try:
            fmt = cls(path, **options_for(cls, options))
            modalities = {
                m: create_modality(m, options_for(MODALITIES.get(m).factory, options)) for m in cls.modalities
            }
            fmt.split("train", modalities)
            fmt.check_evaluation_data(modalities)
            if not format_name:
                logger.info("%s reads as data format %r", path, name)
            return fmt, modalities
        except (MultivicError, OSError, ValueError, TypeError, KeyError) as exc:
            if format_name:
                raise DataError(
                    f"{path} cannot be read as {name}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
                ) from None
            reasons.append(name)
    raise DataError(
        f"{path} is not readable as any registered data format ({', '.join(reasons)}): name one with --format"
    )


def _member(modality: Modality, value: Any) -> tuple[str, bytes]:
    """``(extension, bytes)`` of one sample's value of ``modality``: a file's own bytes when the
    modality reads its type as a member and they decode (never a file that is not what its name
    says), else the value encoded by the modality."""
    if not isinstance(value, Path):
        return modality.encode(value)
    ext = value.suffix.lower().lstrip(".")
    if ext not in modality.member_extensions():
        return modality.encode(modality.read_file(value))
    # Through the one reading path: a regular file (never a FIFO) of bounded size, or one line.
    data = read_file_bytes(value, "remove it from the data set or replace it", MAX_INDEX_BYTES, DataError)
    decode_checked(modality, data, ext, f"file {value}")  # raises DataError naming the file
    return ext, data


def _records(
    fmt: DataFormat, split: str, modalities: Mapping[str, Modality]
) -> tuple[Iterator[dict[str, Any]], int, list[str] | None]:
    """The split's samples as shard members ``{ext: bytes}``, their number, and the class names."""
    samples, n, classes = fmt.stored(split, modalities)

    def records() -> Iterator[dict[str, Any]]:
        for sample in samples:
            record: dict[str, bytes] = {}
            for name, value in sample.items():
                if name == "label":
                    record["cls"] = str(int(value)).encode()
                else:
                    ext, data = _member(modalities[name], value)
                    record[ext] = data
            yield record

    return records(), n, classes


def _write_split(
    records: Iterator[dict[str, Any]], folder: Path, split: str, max_samples: int | None, max_bytes: int | None
) -> list[dict[str, Any]]:
    from webdataset import TarWriter

    shards: list[dict[str, Any]] = []
    writer, count, size, key = None, 0, 0, 0

    def close() -> None:
        nonlocal writer
        if writer is not None:
            writer.close()
            shards[-1].update(samples=count, bytes=(folder / shards[-1]["url"]).stat().st_size)
            writer = None

    for record in records:
        record_bytes = sum(512 + -(-len(v) // 512) * 512 for v in record.values())  # tar: header + padded data
        full = writer is not None and (
            (max_samples is not None and count >= max_samples)
            or (max_bytes is not None and size + record_bytes > max_bytes and count > 0)
        )
        if writer is None or full:
            close()
            name = f"{split}-{len(shards):06d}.tar"
            shards.append({"url": name})
            writer, count, size = TarWriter(str(folder / name), encoder=False, mtime=0.0), 0, 0
        writer.write({"__key__": f"{key:09d}", **record})
        count, size, key = count + 1, size + record_bytes, key + 1
    close()
    return shards


def write_shards(
    src: str,
    out: str | Path,
    format_name: str | None = None,
    shard_size: str = "1000",
    options: dict[str, Any] | None = None,
    imports: Sequence[str] = (),
) -> dict[str, Any]:
    """Write SRC's train and val splits as shards into OUT with the index; returns the index.
    ``imports``: plug-in modules (dotted names or .py files) the source's format or modalities
    come from."""
    import_modules(list(imports))
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists: multivic shard never overwrites; choose another OUT or remove it")
    max_samples, max_bytes = parse_shard_size(shard_size)
    # Command-line values are text: "5" -> 5, "null" -> None, as in a recipe.
    options = {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in (options or {}).items()}
    fmt, modalities = _source(src, format_name, options)
    if not leads_outside(out, Path(fmt.root)):  # OUT inside SRC: the shards would become part of the data set
        raise DataError(
            f"{out} is inside the source data set {fmt.root}: its shards would become part of it (a class folder "
            "without images, say); choose an OUT outside it"
        )
    member_codecs(modalities)  # two modalities claiming one member type: refused before writing
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; OUT gets the usual permissions
    try:
        index: dict[str, Any] = {
            "multivic_shards": INDEX_VERSION,
            "source": {"format": fmt.name, "root": str(Path(fmt.root).resolve()), "options": fmt.options()},
            "protocol": fmt.protocol,
            "modalities": list(fmt.modalities),
            "classes": None,
            "splits": {},
        }
        for split in ("train", "val"):
            records, n, classes = _records(fmt, split, modalities)
            index["splits"][split] = _write_split(records, tmp, split, max_samples, max_bytes)
            index["classes"] = index["classes"] or classes
            logger.info("%s: %d samples in %d shards", split, n, len(index["splits"][split]))
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")
        if out.is_dir():
            out.rmdir()  # empty (checked above); rename cannot replace a folder on every system
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index


__all__ = ["parse_shard_size", "write_shards"]
