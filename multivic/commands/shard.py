"""``multivic shard SRC OUT``: any registered data format (or a built-in data set) as tar shards.

Writes ``OUT/train-000000.tar, ...``, ``OUT/val-000000.tar, ...`` (WebDataset layout: members
``<key>.<ext>``) and ``OUT/shards.json``, the index the ``webdataset`` format reads (each
shard's name and sample count, class names, modalities, the evaluation protocol, the source).

What goes in a sample: an image file's or audio file's own bytes when the source names its
files (``jpg``/``png``/..., ``wav``/``flac``/``ogg``; other files are re-encoded losslessly as
``png`` / float ``wav``), every caption of an image as ``json`` (``{"captions": [...]}``), the
label as ``cls``. The val split of a retrieval format is its evaluation set (each image with
the captions the evaluation uses, ``captions_per_image``); a fold-based format's val split is
its ``test_fold``.

OUT must not exist (or be an empty folder); everything is written into a temporary folder
beside it, renamed to OUT when complete, so an interrupted run leaves no half-written OUT.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from multivic.errors import ConfigError, DataError, MultivicError
from multivic.formats import DataFormat, builtin_formats
from multivic.formats.webdataset import AUDIO_EXTS, IMAGE_EXTS, INDEX_FILE, INDEX_VERSION
from multivic.modalities import Modality, Transformed, create_modality
from multivic.options import options_for
from multivic.registry import FORMATS, MODALITIES

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
    names = [format_name] if format_name else [n for n in FORMATS.names() if n != SHARD_FORMAT]
    reasons = []
    for name in names:
        cls = FORMATS.get(name).factory
        try:
            fmt = cls(path, **options_for(cls, options))
            modalities = {m: create_modality(m, options_for(MODALITIES.get(m).factory, options)) for m in cls.modalities}
            fmt.split("train", modalities)
            fmt.check_evaluation_data(modalities)
            if not format_name:
                logger.info("%s reads as data format %r", path, name)
            return fmt, modalities
        except (MultivicError, OSError, ValueError, TypeError, KeyError) as exc:
            if format_name:
                raise DataError(f"{path} cannot be read as {name}: {str(exc).splitlines()[0] if str(exc) else exc!r}") from None
            reasons.append(name)
    raise DataError(f"{path} is not readable as any registered data format ({', '.join(reasons)}): name one with --format")


def _file_bytes(path: Path, known: tuple[str, ...]) -> tuple[str, bytes] | None:
    ext = path.suffix.lower().lstrip(".")
    ext = {"jpeg": "jpg", "tif": "tiff"}.get(ext, ext)
    return (ext, path.read_bytes()) if ext in known else None


def _encode_image(image: Any) -> tuple[str, bytes]:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "png", buf.getvalue()


def _encode_audio(wave: Any, sample_rate: int) -> tuple[str, bytes]:
    import soundfile

    buf = io.BytesIO()
    soundfile.write(buf, wave.numpy(), sample_rate, format="WAV", subtype="FLOAT")
    return "wav", buf.getvalue()


def _records(fmt: DataFormat, split: str, modalities: Mapping[str, Modality]) -> tuple[Iterator[dict[str, Any]], int, list[str] | None]:
    """The split's samples as ``{ext: bytes}``, their number, and the class names."""
    if fmt.protocol == "retrieval" and split == "val":
        rs = fmt.retrieval_set(modalities)
        (mod_a, items), (_, texts) = rs.first, rs.second
        captions: list[list[str]] = [[] for _ in range(len(items))]
        for text, i in zip(texts, rs.second_to_first):
            captions[i].append(text)
        paths = items.items if isinstance(items, Transformed) else None

        def retrieval() -> Iterator[dict[str, Any]]:
            for i in range(len(items)):
                raw = _file_bytes(Path(paths[i]), IMAGE_EXTS) if paths is not None and isinstance(paths[i], (str, Path)) else None
                ext, data = raw or _encode_image(items[i])
                yield {ext: data, "json": json.dumps({"captions": captions[i]}).encode()}
        return retrieval(), len(items), None

    samples = fmt.split(split, modalities)
    coco = getattr(samples, "coco", None)  # images with every caption (the coco format)
    reader = getattr(samples, "reader", None)
    files = getattr(reader, "samples", None) or getattr(reader, "files", None)  # (path, label) pairs
    classes = list(getattr(samples, "classes", []) or []) or None
    sample_rate = int(getattr(modalities.get("waveform"), "sample_rate", 16000))

    def records() -> Iterator[dict[str, Any]]:
        for i in range(len(samples)):  # type: ignore[arg-type]
            if coco is not None:
                raw = _file_bytes(Path(coco.image_paths[i]), IMAGE_EXTS)
                ext, data = raw or _encode_image(samples[i]["image"])
                yield {ext: data, "json": json.dumps({"captions": list(coco.captions[i])}).encode()}
                continue
            if files is not None:
                path, label = files[i]
                raw = _file_bytes(Path(path), IMAGE_EXTS + AUDIO_EXTS)
                if raw is not None:
                    yield {raw[0]: raw[1], "cls": str(int(label)).encode()}
                    continue
            sample = samples[i]
            out: dict[str, Any] = {}
            if "image" in sample:
                out.update([_encode_image(sample["image"])])
            if "waveform" in sample:
                out.update([_encode_audio(sample["waveform"], sample_rate)])
            if "text" in sample:
                out["json"] = json.dumps({"captions": [sample["text"]]}).encode()
            if "label" in sample:
                out["cls"] = str(int(sample["label"])).encode()
            yield out
    return records(), len(samples), classes  # type: ignore[arg-type]


def _write_split(records: Iterator[dict[str, Any]], folder: Path, split: str, max_samples: int | None,
                 max_bytes: int | None) -> list[dict[str, Any]]:
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
            (max_samples is not None and count >= max_samples) or (max_bytes is not None and size + record_bytes > max_bytes and count > 0)
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


def write_shards(src: str, out: str | Path, format_name: str | None = None, shard_size: str = "1000",
                 options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write SRC's train and val splits as shards into OUT with the index; returns the index."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists: multivic shard never overwrites; choose another OUT or remove it")
    max_samples, max_bytes = parse_shard_size(shard_size)
    # Command-line values are text: "5" -> 5, "null" -> None, as in a recipe.
    options = {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in (options or {}).items()}
    fmt, modalities = _source(src, format_name, options)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; OUT gets the usual permissions
    try:
        index: dict[str, Any] = {
            "multivic_shards": INDEX_VERSION, "source": {"format": fmt.name, "root": str(Path(fmt.root).resolve()),
                                                         "options": fmt.options()},
            "protocol": fmt.protocol, "modalities": list(fmt.modalities), "classes": None, "splits": {},
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
