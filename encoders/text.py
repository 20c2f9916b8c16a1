"""Text encoders (modality "text"): they take {"input_ids": [B, L], "attention_mask": [B, L]}."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from multivic.registry import register_encoder


class GRUTextEncoder(nn.Module):
    """Word embeddings and a GRU, as in VSE++. Output [B, hidden × directions].

    ``pooling="last"`` takes the final hidden state of the real tokens (both directions when
    bidirectional); ``"mean"`` averages the outputs over the real tokens.
    """

    modality = "text"

    def __init__(
        self, vocab_size: int, embed_dim: int = 300, hidden_dim: int = 1024, num_layers: int = 1,
        bidirectional: bool = False, pooling: str = "last",
    ) -> None:
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean'; got {pooling!r}")
        if vocab_size < 2:
            raise ValueError(f"vocab_size must be >= 2; got {vocab_size}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.gru = nn.GRU(embed_dim, hidden_dim, num_layers, batch_first=True, bidirectional=bidirectional)
        self.pooling = pooling
        self.out_dim: int = hidden_dim * (2 if bidirectional else 1)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        lengths = mask.sum(dim=1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        out, hidden = self.gru(packed)
        if self.pooling == "last":
            directions = 2 if self.gru.bidirectional else 1
            return hidden[-directions:].transpose(0, 1).reshape(ids.shape[0], -1)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        m = mask[:, :, None].to(out.dtype)
        return (out * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)


@register_encoder("gru", modality="text")
def gru(
    vocab_size: int = 1000, embed_dim: int = 300, hidden_dim: int = 1024, num_layers: int = 1,
    bidirectional: bool = False, pooling: str = "last",
) -> GRUTextEncoder:
    """VSE++-style GRU over word embeddings (300-d embeddings, 1024-d hidden by default)."""
    return GRUTextEncoder(vocab_size, embed_dim, hidden_dim, num_layers, bidirectional, pooling)
