"""A few retrieval queries and their top items, kept for the report's pictures.

For each direction (first → second kind, e.g. image → caption, and back) a handful of queries
evenly spread over the retrieval set, each with its top-k items by cosine similarity and whether
each is a true match. Images are kept as small PNG thumbnails and texts as text, so the report
can show them without the data set (``RUN_DIR/eval_examples/``: examples.json and the PNGs).
Items of other kinds (audio, ...) are named by their index only.

Everything here is data: the report reads examples.json with ``json`` and the PNGs with Pillow.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from multivic.errors import RunDirError
from multivic.run_dir import remove_path

THUMBNAIL_PX = 96
EXAMPLES_FILE = "examples.json"


@dataclass
class RetrievalExamples:
    """``directions``: JSON-able list of {"query_kind", "item_kind", "queries": [{"query": item,
    "top": [item + "correct"]}]}, an item being {"index", and "text" or "thumbnail" (a PNG file
    name)}; ``thumbnails``: the PNG file names' images."""

    directions: list[dict[str, Any]] = field(default_factory=list)
    thumbnails: dict[str, Image.Image] = field(default_factory=dict)


@torch.no_grad()
def retrieval_examples(
    emb_first: Tensor,
    emb_second: Tensor,
    second_to_first: Sequence[int] | Tensor,
    first: tuple[str, Sequence[Any]],
    second: tuple[str, Sequence[Any]],
    queries: int = 4,
    k: int = 5,
) -> RetrievalExamples:
    """Top-``k`` items of ``queries`` queries each way.

    Args:
        emb_first: [N, D] embeddings of the first kind (images); emb_second: [M, D] (captions).
        second_to_first: [M] the first-kind item each second-kind item belongs to.
        first, second: (kind, raw items) as the retrieval set gives them: an item is read by
            indexing (a PIL image, a string, ...).
    """
    index = torch.as_tensor(second_to_first, dtype=torch.long)
    a, b = F.normalize(emb_first.float(), dim=1), F.normalize(emb_second.float(), dim=1)
    out = RetrievalExamples()
    for (q_kind, q_items, q_emb), (g_kind, g_items, g_emb), match in (
        (first + (a,), second + (b,), lambda q, g: int(index[g]) == q),
        (second + (b,), first + (a,), lambda q, g: int(index[q]) == g),
    ):
        n = q_emb.shape[0]
        picks = sorted({int(i) for i in torch.linspace(0, n - 1, min(queries, n)).round().long()})
        top = (q_emb[picks] @ g_emb.T).topk(min(k, g_emb.shape[0]), dim=1).indices
        shown = []
        for q, row in zip(picks, top.tolist()):
            items = [{**_item(g_kind, g_items, g, out), "correct": match(q, g)} for g in row]
            shown.append({"query": _item(q_kind, q_items, q, out), "top": items})
        out.directions.append({"query_kind": q_kind, "item_kind": g_kind, "queries": shown})
    return out


def _item(kind: str, items: Sequence[Any], i: int, out: RetrievalExamples) -> dict[str, Any]:
    value = items[i]
    if isinstance(value, str):
        return {"index": i, "text": value}
    if isinstance(value, Image.Image):
        name = f"{kind}_{i}.png"
        if name not in out.thumbnails:
            thumb = value.convert("RGB")
            thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            out.thumbnails[name] = thumb
        return {"index": i, "thumbnail": name}
    return {"index": i}


def write_examples(examples: RetrievalExamples, folder: Path) -> None:
    """Replace ``folder`` with examples.json and the thumbnails: written into a sibling
    temporary folder first, so a reader never sees half of them."""
    tmp = folder.with_name(folder.name + ".tmp")
    remove_path(tmp)
    tmp.mkdir(parents=True)
    for name, image in examples.thumbnails.items():
        image.save(tmp / name, format="PNG")
    (tmp / EXAMPLES_FILE).write_text(json.dumps({"directions": examples.directions}, indent=1) + "\n")
    old = folder.with_name(folder.name + ".old")
    remove_path(old)
    if os.path.lexists(folder):
        os.replace(folder, old)
    os.replace(tmp, folder)
    remove_path(old)


MAX_EXAMPLE_QUERIES = 8  # per direction (evaluation keeps 4): the figure has a row per query
MAX_EXAMPLE_ITEMS = 10  # top items per query (evaluation keeps 5)
MAX_THUMBNAIL_BYTES = 1 << 20
MAX_THUMBNAIL_PX = 1024  # evaluation writes THUMBNAIL_PX


def read_examples(folder: Path) -> list[dict[str, Any]] | None:
    """The directions of ``folder``/examples.json, or None when there is none; a one-line
    RunDirError when it is damaged: not the shape :func:`write_examples` writes, too many
    queries or items, a thumbnail name that leaves ``folder`` or is not a .png file."""
    from multivic.files import is_present, read_json_file

    path = folder / EXAMPLES_FILE
    fix = "delete the folder and re-evaluate the run with `multivic eval`"
    if not is_present(path, fix):
        return None
    directions = read_json_file(path, fix, inside=folder.parent).get("directions")
    problem = _examples_problem(directions)
    if problem:
        raise RunDirError(f"{path} is damaged or was altered ({problem}): {fix}")
    return directions


def _examples_problem(directions: Any) -> str | None:
    if not isinstance(directions, list) or len(directions) > 4:
        return "'directions' is not a short list"
    for direction in directions:
        if not isinstance(direction, dict) or not all(
            isinstance(direction.get(k), str) for k in ("query_kind", "item_kind")
        ):
            return "a direction has no query_kind and item_kind"
        queries = direction.get("queries")
        if not isinstance(queries, list) or not queries or len(queries) > MAX_EXAMPLE_QUERIES:
            return f"a direction has no list of 1 to {MAX_EXAMPLE_QUERIES} queries"
        for query in queries:
            if (
                not isinstance(query, dict)
                or not isinstance(query.get("top"), list)
                or len(query["top"]) > MAX_EXAMPLE_ITEMS
            ):
                return f"a query has no list of at most {MAX_EXAMPLE_ITEMS} top items"
            for item in [query.get("query"), *query["top"]]:
                problem = _item_problem(item)
                if problem:
                    return problem
            if not all(isinstance(item.get("correct"), bool) for item in query["top"]):
                return "a top item does not say whether it is correct"
    return None


def _item_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return "an item is not an object"
    index = item.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        return "an item has no index"
    if "text" in item and (not isinstance(item["text"], str) or len(item["text"]) > 2_000):
        return "an item's text is not a string of sane length"
    name = item.get("thumbnail")
    if name is not None and (
        not isinstance(name, str) or Path(name).name != name or not name.endswith(".png") or name.startswith(".")
    ):
        return f"a thumbnail name leaves its folder or is not a .png file ({str(name)[:60]!r})"
    return None


def open_thumbnail(folder: Path, name: str) -> Image.Image:
    """The RGB image of thumbnail ``name`` in ``folder`` (read by :func:`read_examples`), checked
    as data: a regular file of at most 1 MiB, a PNG of at most 1024 px a side; else a one-line
    RunDirError."""
    from multivic.files import read_file_bytes

    path = folder / name
    fix = "delete the folder and re-evaluate the run with `multivic eval`"
    data = read_file_bytes(path, fix, limit=MAX_THUMBNAIL_BYTES, inside=folder.parent)
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if max(image.size) > MAX_THUMBNAIL_PX:
                raise RunDirError(f"{path} is {image.size[0]}×{image.size[1]} pixels, not a thumbnail: {fix}")
            return image.convert("RGB")
    except RunDirError:
        raise
    except Exception as exc:  # noqa: BLE001 - UnidentifiedImageError, truncated data, DecompressionBombError
        raise RunDirError(f"{path} is damaged (not a readable PNG: {exc.__class__.__name__}): {fix}") from None
