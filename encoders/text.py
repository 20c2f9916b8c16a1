"""Text encoders (modality "text"): they take {"input_ids": [B, L], "attention_mask": [B, L]}."""

from __future__ import annotations

from torch import Tensor, nn

from multivic.registry import register_encoder


@register_encoder("gru", modality="text")
class GRUTextEncoder(nn.Module):
    """Word embeddings and a GRU, as in VSE++ (registered as ``gru``). Output [B, hidden × directions].

    ``pooling="last"`` takes the final hidden state of the real tokens (both directions when
    bidirectional); ``"mean"`` averages the outputs over the real tokens.
    """

    modality = "text"

    def __init__(
        self,
        vocab_size: int = 1000,
        embed_dim: int = 300,
        hidden_dim: int = 1024,
        num_layers: int = 1,
        bidirectional: bool = False,
        pooling: str = "last",
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


class TransformerTextEncoder(nn.Module):
    """A BERT-style transformer (transformers' BertModel) over token ids. Output [B, hidden_size].

    Built from a config with random weights, or read from a local folder saved with
    ``save_pretrained`` (``pretrained_dir``; never fetched from the hub). Pooling: the first
    token's state ("cls") or the mean over real tokens ("mean").
    """

    modality = "text"

    def __init__(self, model: nn.Module, pooling: str) -> None:
        super().__init__()
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean'; got {pooling!r}")
        self.model = model
        self.pooling = pooling
        self.out_dim: int = int(model.config.hidden_size)

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        mask = batch["attention_mask"]
        states = self.model(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
        if self.pooling == "cls":
            return states[:, 0]
        m = mask[:, :, None].to(states.dtype)
        return (states * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)


@register_encoder("bert", modality="text")
def bert(
    vocab_size: int = 1000,
    hidden_size: int = 256,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int = 1024,
    max_positions: int = 128,
    dropout: float = 0.1,
    pooling: str = "cls",
    pretrained_dir: str | None = None,
) -> TransformerTextEncoder:
    """BERT-style transformer from transformers, random init (sizes configurable) or a local pretrained folder."""
    from transformers import BertConfig, BertModel

    if pretrained_dir:
        from pathlib import Path

        path = Path(pretrained_dir).expanduser()
        if not path.is_dir():
            raise ValueError(
                f"pretrained_dir {path} is not a folder (a local save_pretrained folder; nothing is downloaded)"
            )
        model = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
    else:
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size,
            max_position_embeddings=max_positions,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
            pad_token_id=0,
        )
        model = BertModel(config, add_pooling_layer=False)
    return TransformerTextEncoder(model, pooling)
