import pytest
import torch

from multivic import create_encoder
from multivic.errors import DataError
from multivic.text.vocabulary import WordVocabulary, word_tokens


def test_tokens():
    assert word_tokens("A red Circle, left of the cat's box.") == ["a", "red", "circle", ",", "left", "of", "the", "cat's", "box", "."]


def test_build_encode_batch_and_round_trip(tmp_path):
    vocab = WordVocabulary.build(["a red circle", "a blue square", "a red star"], min_count=2)
    assert vocab.words == ["<pad>", "<unk>", "a", "red"]
    assert vocab.encode("A red dog") == [2, 3, 1]
    batch = vocab.batch(["a red", "red a red a"])
    assert batch["input_ids"].tolist() == [[2, 3, 0, 0], [3, 2, 3, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    vocab.save(tmp_path / "vocab.json")
    again = WordVocabulary.load(tmp_path / "vocab.json")
    assert again.words == vocab.words and again.encode("a red dog") == vocab.encode("a red dog")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="not a multivic word vocabulary"):
        WordVocabulary.load(tmp_path / "bad.json")


@pytest.mark.parametrize("pooling,bidirectional", [("last", False), ("last", True), ("mean", False)])
def test_gru_ignores_padding(pooling, bidirectional):
    torch.manual_seed(0)
    enc = create_encoder("gru", vocab_size=20, embed_dim=8, hidden_dim=6, pooling=pooling, bidirectional=bidirectional).eval()
    short = {"input_ids": torch.tensor([[4, 5, 6]]), "attention_mask": torch.tensor([[1, 1, 1]])}
    padded = {"input_ids": torch.tensor([[4, 5, 6, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 0, 0]])}
    assert enc.out_dim == 6 * (2 if bidirectional else 1)
    assert torch.allclose(enc(short), enc(padded), atol=1e-6)
