"""A few-step image–text run through the CLI on the built-in captioned set, written in the COCO layout."""

import json

import pytest

from multivic.cli import main
from multivic.data.builtin.captions import write_captions_dataset
from multivic.data.readers.coco import read_coco_official

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    return write_captions_dataset(tmp_path_factory.mktemp("captions"), train_images=48, val_images=20, size=32)


def test_builtin_captions_follow_the_official_layout(captioned):
    val = read_coco_official(captioned, "val")
    assert len(val) == 20 and all(len(c) == 5 for c in val.captions)
    words = " ".join(val.captions[0])
    assert any(colour in words for colour in ("red", "green", "blue", "yellow", "purple", "white"))


def test_image_text_run_reports_retrieval(captioned, tmp_path):
    run = tmp_path / "run"
    code = main(
        [
            "train",
            "recipes/quickstart/coco_retrieval.yaml",
            "--output-dir",
            str(run),
            "--no-progress",
            f"data.root={captioned}",
            "data.num_workers=0",
            "data.image_size=16",
            "train.epochs=1",
            "train.batch_size=16",
            "model.branch_b.encoder_kwargs.hidden_dim=32",
        ]
    )
    assert code == 0
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "i2t_medr", "t2i_medr"):
        assert key in metrics
    vocab = json.loads((run / "modalities" / "text" / "vocabulary.json").read_text())[
        "words"
    ]  # the default word tokenizer
    exported = json.loads((run / "export" / "text.json").read_text())
    assert exported["encoder_kwargs"]["vocab_size"] == len(vocab) and exported["modality"] == "text"
    # Each branch's collapse statistics on its side of the retrieval set, and the report's end figures.
    for branch in ("image", "text"):
        assert metrics[f"{branch}/rankme"] >= 1 and metrics[f"{branch}/std_mean"] > 0
    for name in ("spectrum.png", "std_histogram.png", "retrieval_examples.png"):
        assert (run / "report" / name).is_file(), name
    examples = json.loads((run / "eval_examples" / "examples.json").read_text())["directions"]
    assert [(d["query_kind"], d["item_kind"]) for d in examples] == [("image", "text"), ("text", "image")]
    # Evaluation again from the run directory alone.
    assert main(["eval", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text())["rsum"] == pytest.approx(metrics["rsum"])


def test_text_branch_on_image_data_is_refused(tiny_recipe, tmp_path, capsys):
    code = main(
        [
            "train",
            str(tiny_recipe),
            "--output-dir",
            str(tmp_path / "r"),
            "model.shared=false",
            "model.branch_b.name=words",
            "model.branch_b.encoder=gru",
            "model.branch_b.expander=64-64",
        ]
    )
    assert code == 2
    assert (
        "model.branch_b ('words') reads modality 'text' but data.format='image_folder' gives 'image'"
        in capsys.readouterr().err
    )


def test_transformer_text_branch_with_a_wordpiece_tokenizer(captioned, tmp_path):
    recipe = tmp_path / "bert.yaml"
    recipe.write_text(f"""
model:
  shared: false
  branch_a: {{name: image, encoder: resnet18, expander: 64-64, view: {{hflip_p: 0.0}}}}
  branch_b:
    {{name: text, encoder: bert, expander: 64-64,
      encoder_kwargs: {{hidden_size: 32, num_layers: 1, num_heads: 2, intermediate_size: 64}}}}
data:
  {{format: coco, root: {captioned}, image_size: 16, num_workers: 0, tokenizer: wordpiece,
    tokenizer_vocab_size: 120}}
optim: {{name: adamw, base_lr: 0.004, warmup_epochs: 0}}
train: {{epochs: 1, batch_size: 16, log_every: 1}}
""")
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--output-dir", str(run), "--no-progress"]) == 0
    assert (run / "modalities" / "text" / "wordpiece.json").is_file()
    assert "t2i_r10" in json.loads((run / "metrics.json").read_text())


def test_embed_a_captions_file(captioned, tmp_path):
    import numpy as np

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "recipes/quickstart/coco_retrieval.yaml",
                "--output-dir",
                str(run),
                "--no-progress",
                f"data.root={captioned}",
                "train.epochs=0",
                "eval.enabled=false",
                "model.branch_b.encoder_kwargs.hidden_dim=16",
            ]
        )
        == 0
    )
    (tmp_path / "captions.txt").write_text("a red circle left of a blue square\n\na small white star\n")
    out = tmp_path / "text.npz"
    assert (
        main(["embed", str(run), "--branch", "text", "--input", str(tmp_path / "captions.txt"), "--out", str(out)]) == 0
    )
    loaded = np.load(out)
    assert loaded["embeddings"].shape == (2, 16) and loaded["inputs"][1] == "a small white star"
    coco_json = captioned / "annotations" / "captions_val2017.json"
    assert (
        main(["embed", str(run), "--branch", "text", "--input", str(coco_json), "--out", str(tmp_path / "c.npy")]) == 0
    )
    assert np.load(tmp_path / "c.npy").shape == (100, 16)
