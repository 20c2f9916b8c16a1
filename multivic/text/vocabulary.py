"""A word-level vocabulary built from training captions, saved with the run.

Lower-cased words and punctuation marks are the tokens; words seen fewer than ``min_count``
times map to ``<unk>``. Index 0 is padding, 1 unknown.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

import torch

from multivic.errors import DataError

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def word_tokens(text: str) -> list[str]:
    """ "A red Circle, left of..." → ["a", "red", "circle", ",", "left", "of", ".", ".", "."]."""
    return _TOKEN.findall(text.lower())


def pad_batch(encoded: list[list[int]]) -> dict[str, torch.Tensor]:
    """Token id lists → {"input_ids": [B, L], "attention_mask": [B, L]}, padded with id 0."""
    length = max(len(e) for e in encoded)
    ids = torch.zeros(len(encoded), length, dtype=torch.long)
    mask = torch.zeros(len(encoded), length, dtype=torch.long)
    for row, e in enumerate(encoded):
        ids[row, : len(e)] = torch.tensor(e, dtype=torch.long)
        mask[row, : len(e)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class WordVocabulary:
    """Maps words to indices and captions to padded index tensors."""

    def __init__(self, words: list[str]) -> None:
        if words[:2] != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> "WordVocabulary":
        counts = Counter(t for c in captions for t in word_tokens(c))
        kept = sorted(w for w, n in counts.items() if n >= min_count)  # sorted: the same captions give the same ids
        return cls([PAD, UNK, *kept])

    def encode(self, text: str, max_length: int = 64) -> list[int]:
        ids = [self.index.get(t, 1) for t in word_tokens(text)][:max_length]
        return ids or [1]  # an all-punctuation-free empty text still gets one (unknown) token

    def batch(self, texts: list[str], max_length: int = 64) -> dict[str, torch.Tensor]:
        """{"input_ids": [B, L] int64, "attention_mask": [B, L] int64}, padded with 0 to the longest."""
        return pad_batch([self.encode(t, max_length) for t in texts])

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"kind": "word", "words": self.words}))

    @classmethod
    def load(cls, path: Path) -> "WordVocabulary":
        """The vocabulary :meth:`save` wrote (a run's or an export's file, maybe from elsewhere: the
        caller checks where it lies): a list of words starting with <pad>, <unk>; anything else is a
        DataError naming it."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, huge ints
            raise DataError(f"cannot read vocabulary {path}: {str(exc).splitlines()[0][:200]}") from None
        words = data.get("words") if isinstance(data, dict) else None
        if not isinstance(data, dict) or data.get("kind") != "word" or not isinstance(words, list):
            raise DataError(f"{path} is not a multivic word vocabulary")
        if not all(isinstance(w, str) for w in words) or words[:2] != [PAD, UNK]:
            raise DataError(f"{path} is not a multivic word vocabulary (a list of words starting {PAD!r}, {UNK!r})")
        return cls(words)
