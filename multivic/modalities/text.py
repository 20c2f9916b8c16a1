"""The text modality: captions in, ``{"input_ids", "attention_mask"}`` [B, L] batches out.

Views pass captions through unchanged; tokenising happens per batch in the collate, with a
tokenizer fitted on the training captions when training starts (``data.tokenizer``: "word",
"wordpiece" or a local Hugging Face tokenizer folder) and saved with the run and its exports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from multivic.errors import DataError
from multivic.files import MAX_INDEX_BYTES, read_json_file, read_text_file
from multivic.modalities import Modality, Transformed, check_at_most, identity
from multivic.registry import register_modality
from multivic.text.tokenizers import Tokenizer, build_tokenizer, load_tokenizer

# Upper bounds of the options: beyond them a value is a typo or a tampered export, not a recipe.
MAX_CAPTION_TOKENS = 8192
MAX_VOCAB_SIZE = 1_000_000


class TextCollate:
    """A list of captions → {"input_ids": [B, L], "attention_mask": [B, L]} with a tokenizer."""

    def __init__(self, tokenizer: Tokenizer, max_length: int) -> None:
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.tokenizer.batch(list(texts), self.max_length)


def read_captions(path: Path) -> list[str]:
    """Captions from a text file (one per line) or a COCO captions JSON (its annotations), read
    through the one reading path for files from elsewhere (regular files, bounded, one-line errors)."""
    fix = "give a captions file (.txt, one caption per line, or a COCO captions .json)"
    if path.suffix == ".json":
        data = read_json_file(path, fix, MAX_INDEX_BYTES, DataError)
        annotations = data.get("annotations")
        if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
            raise DataError(f"--input {path} is not a COCO captions file: it has no 'annotations' list of objects")
        texts = [str(a.get("caption", "")).strip() for a in annotations]
    else:
        texts = [line.strip() for line in read_text_file(path, fix, MAX_INDEX_BYTES, DataError).splitlines()]
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"--input {path} holds no captions")
    return texts


def parse_captions(data: bytes, ext: str, where: str) -> list[str]:
    """The captions of a shard member: ``json`` (a list, ``{"captions": [...]}``, or
    ``{"caption": "..."}``) or ``txt`` (one per line); a DataError naming ``where`` when there
    are none or the member cannot be read."""
    try:
        if ext == "json":
            value = json.loads(data.decode("utf-8"))
            if isinstance(value, dict):
                value = value.get("captions", value.get("caption", value.get("text")))
            captions = [value] if isinstance(value, str) else list(value or [])
        else:
            captions = [line.strip() for line in data.decode("utf-8").splitlines() if line.strip()]
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise DataError(f"cannot read the captions of {where}: {type(exc).__name__}: {exc}") from None
    captions = [str(c) for c in captions if str(c).strip()]
    if not captions:
        raise DataError(f"{where} has an empty caption list")
    return captions


@register_modality("text")
@dataclass
class TextModality(Modality):
    """Captions. Options: ``tokenizer`` ("word", "wordpiece" or a local folder), ``min_word_count``
    (word vocabulary), ``max_caption_tokens`` (captions are cut to it), ``tokenizer_vocab_size``
    (WordPiece)."""

    name = "text"
    # "word" (a vocabulary of the training captions' words), "wordpiece" (a WordPiece tokenizer
    # trained on them) or a local Hugging Face tokenizer folder.
    tokenizer: str = "word"
    # The word tokenizer keeps words seen at least this many times in the training captions.
    min_word_count: int = 1
    # Captions are cut to this many tokens.
    max_caption_tokens: int = 32
    # The WordPiece tokenizer's vocabulary size.
    tokenizer_vocab_size: int = 8000
    fitted: Tokenizer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_caption_tokens < 1:
            raise ValueError(f"max_caption_tokens must be >= 1; got {self.max_caption_tokens}")
        if self.tokenizer_vocab_size < 1:
            raise ValueError(f"tokenizer_vocab_size must be >= 1; got {self.tokenizer_vocab_size}")
        if self.min_word_count < 0:
            raise ValueError(f"min_word_count must be >= 0; got {self.min_word_count}")
        check_at_most("max_caption_tokens", self.max_caption_tokens, MAX_CAPTION_TOKENS, "tokens per caption")
        check_at_most("tokenizer_vocab_size", self.tokenizer_vocab_size, MAX_VOCAB_SIZE, "tokens in the vocabulary")

    needs_fitting = True
    groups_items = True  # an image's several captions travel in one shard member

    def train_view(self) -> Callable[[str], str]:
        return identity

    def eval_view(self) -> Callable[[str], str]:
        return identity

    def collate(self) -> TextCollate:
        if self.fitted is None:
            raise DataError("the text modality has no tokenizer yet: fit it on the training captions or load a run's")
        return TextCollate(self.fitted, self.max_caption_tokens)

    def example_batch(self, batch_size: int = 2) -> dict[str, torch.Tensor]:
        ids = torch.randint(1, 50, (batch_size, 4))
        mask = torch.ones_like(ids)
        ids[0, -1], mask[0, -1] = 0, 0  # one padded position
        return {"input_ids": ids, "attention_mask": mask}

    def member_extensions(self) -> tuple[str, ...]:
        return ("json", "txt")

    def encode(self, value: str | list[str]) -> tuple[str, bytes]:
        captions = [value] if isinstance(value, str) else [str(c) for c in value]
        return "json", json.dumps({"captions": captions}).encode()

    def decode(self, data: bytes, ext: str, where: str) -> list[str]:
        return parse_captions(data, ext, where)

    def items(self, value: list[str]) -> list[str]:
        return list(value)

    def pick(self, value: list[str]) -> str:
        # A caption drawn from torch's RNG, seeded per sample by the loader (as the coco format's).
        return value[int(torch.randint(0, len(value), ()))]

    def embed_inputs(self, path: Path) -> tuple[Transformed, list[str]]:
        """The captions of a text file (one per line) or a COCO captions JSON; named by themselves."""
        texts = read_captions(path)
        return Transformed(texts, identity, self.eval_view()), texts

    def fit(self, corpus: Iterable[str]) -> None:
        self.fitted = build_tokenizer(self.tokenizer, list(corpus), self.min_word_count, self.tokenizer_vocab_size)

    def is_fitted(self) -> bool:
        return self.fitted is not None

    def save(self, folder: Path) -> None:
        if self.fitted is not None:
            self.fitted.save(folder)

    def load(self, folder: Path) -> None:
        self.fitted = load_tokenizer(folder)

    def encoder_kwargs(self) -> dict[str, Any]:
        return {"vocab_size": len(self.fitted)} if self.fitted is not None else {}
