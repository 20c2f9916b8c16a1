"""Tokenizers for captions, one interface for three sources.

- "word": :class:`~multivic.text.vocabulary.WordVocabulary`, words of the training captions.
- "wordpiece": a WordPiece tokenizer trained with the ``tokenizers`` library on the training
  captions (lower-cased, BERT pre-tokenisation, ``vocab_size`` entries at most).
- a local directory: a tokenizer saved with Hugging Face ``save_pretrained`` (never fetched
  from the hub).

Each gives ``batch(texts, max_length)`` → {"input_ids", "attention_mask"} [B, L], ``len()``,
and ``save(folder)``; :func:`load_tokenizer` reads any of them back from a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch

from multivic.errors import DataError
from multivic.text.vocabulary import WordVocabulary, pad_batch

WORD_FILE, WORDPIECE_FILE, PRETRAINED_DIR = "vocabulary.json", "wordpiece.json", "pretrained"


class Tokenizer(Protocol):
    def batch(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]: ...
    def __len__(self) -> int: ...
    def save(self, folder: Path) -> None: ...


class WordTokenizer:
    """The word vocabulary behind the common interface."""

    def __init__(self, vocab: WordVocabulary) -> None:
        self.vocab = vocab

    def batch(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        return self.vocab.batch(texts, max_length)

    def __len__(self) -> int:
        return len(self.vocab)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.vocab.save(folder / WORD_FILE)


class WordPieceTokenizer:
    """A ``tokenizers`` WordPiece model; [PAD] is id 0."""

    def __init__(self, tokenizer) -> None:  # a tokenizers.Tokenizer
        self.tokenizer = tokenizer

    @classmethod
    def train(cls, captions: list[str], vocab_size: int) -> "WordPieceTokenizer":
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, normalizers, pre_tokenizers, trainers

        tok = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]", "[CLS]"])
        tok.train_from_iterator(captions, trainer)
        return cls(tok)

    def batch(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        cls_id = self.tokenizer.token_to_id("[CLS]")
        return pad_batch([[cls_id, *e.ids][:max_length] for e in self.tokenizer.encode_batch(texts)])

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(folder / WORDPIECE_FILE))


class PretrainedTokenizer:
    """A Hugging Face tokenizer read from a local folder."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    @classmethod
    def from_dir(cls, path: str | Path) -> "PretrainedTokenizer":
        from transformers import AutoTokenizer

        path = Path(path).expanduser()
        if not path.is_dir():
            raise DataError(f"tokenizer folder {path} not found: give a local folder saved with save_pretrained")
        try:
            return cls(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load a tokenizer from {path}: {str(exc).splitlines()[0]}") from None

    def batch(self, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
        out = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}

    def __len__(self) -> int:
        return len(self.tokenizer)

    def save(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(str(folder / PRETRAINED_DIR))


def build_tokenizer(kind: str, captions: list[str], min_word_count: int = 1, vocab_size: int = 8000) -> Tokenizer:
    """ "word", "wordpiece" (both from ``captions``) or the path of a local tokenizer folder."""
    if kind == "word":
        return WordTokenizer(WordVocabulary.build(captions, min_word_count))
    if kind == "wordpiece":
        return WordPieceTokenizer.train(captions, vocab_size)
    return PretrainedTokenizer.from_dir(kind)


def load_tokenizer(folder: Path) -> Tokenizer:
    """The tokenizer a run saved in ``folder`` (its ``text/`` directory)."""
    if (folder / WORD_FILE).is_file():
        return WordTokenizer(WordVocabulary.load(folder / WORD_FILE))
    if (folder / WORDPIECE_FILE).is_file():
        from tokenizers import Tokenizer as HFTokenizer

        return WordPieceTokenizer(HFTokenizer.from_file(str(folder / WORDPIECE_FILE)))
    if (folder / PRETRAINED_DIR).is_dir():
        return PretrainedTokenizer.from_dir(folder / PRETRAINED_DIR)
    raise DataError(f"no saved tokenizer in {folder}: train the run first")
