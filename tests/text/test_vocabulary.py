import pytest
import torch

from multivic import create_encoder
from multivic.errors import DataError
from multivic.text.vocabulary import WordVocabulary, word_tokens


def test_tokens():
    assert word_tokens("A red Circle, left of the cat's box.") == [
        "a",
        "red",
        "circle",
        ",",
        "left",
        "of",
        "the",
        "cat's",
        "box",
        ".",
    ]


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
    enc = create_encoder(
        "gru", vocab_size=20, embed_dim=8, hidden_dim=6, pooling=pooling, bidirectional=bidirectional
    ).eval()
    short = {"input_ids": torch.tensor([[4, 5, 6]]), "attention_mask": torch.tensor([[1, 1, 1]])}
    padded = {"input_ids": torch.tensor([[4, 5, 6, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 0, 0]])}
    assert enc.out_dim == 6 * (2 if bidirectional else 1)
    assert torch.allclose(enc(short), enc(padded), atol=1e-6)


def test_wordpiece_and_local_pretrained_tokenizers_round_trip(tmp_path):
    from multivic.text.tokenizers import PretrainedTokenizer, build_tokenizer, load_tokenizer

    captions = ["a red circle left of a blue square", "a small green star above a white cross"] * 20
    wp = build_tokenizer("wordpiece", captions, vocab_size=200)
    batch = wp.batch(["a red star", "a blue"], 16)
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()
    wp.save(tmp_path / "wp")
    again = load_tokenizer(tmp_path / "wp")
    assert torch.equal(again.batch(["a red star"], 16)["input_ids"], wp.batch(["a red star"], 16)["input_ids"])

    # A local Hugging Face tokenizer folder, made here from the trained WordPiece model.
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=wp.tokenizer, pad_token="[PAD]", unk_token="[UNK]")
    fast.save_pretrained(str(tmp_path / "hf"))
    local = build_tokenizer(str(tmp_path / "hf"), captions)
    out = local.batch(["a red star", "a blue"], 16)
    assert out["input_ids"].shape[0] == 2 and len(local) == len(wp)
    local.save(tmp_path / "run_text")
    assert isinstance(load_tokenizer(tmp_path / "run_text"), PretrainedTokenizer)
    with pytest.raises(DataError, match="tokenizer folder .* not found"):
        build_tokenizer(str(tmp_path / "missing"), captions)


def test_bert_encoder_from_config_and_from_a_local_folder(tmp_path):
    torch.manual_seed(0)
    enc = create_encoder("bert", vocab_size=30, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32).eval()
    batch = {"input_ids": torch.tensor([[2, 5, 7, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 0]])}
    assert enc(batch).shape == (1, 16) and enc.out_dim == 16
    enc.model.save_pretrained(str(tmp_path / "bert"))
    again = create_encoder("bert", pretrained_dir=str(tmp_path / "bert")).eval()
    assert torch.allclose(again(batch), enc(batch), atol=1e-6)
    with pytest.raises(ValueError, match="not a folder"):
        create_encoder("bert", pretrained_dir=str(tmp_path / "nope"))
