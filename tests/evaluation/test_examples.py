"""Retrieval examples: the top items by cosine, against a brute-force ranking, kept as data."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from multivic.errors import RunDirError
from multivic.evaluation.examples import read_examples, retrieval_examples, write_examples


def _case(n_images=9, per_image=2, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, d, generator=g)
    index = torch.arange(n_images).repeat_interleave(per_image)
    captions = images[index] + 0.8 * torch.randn(len(index), d, generator=g)
    pictures = [Image.new("RGB", (200, 150), (20 * i, 0, 0)) for i in range(n_images)]
    texts = [f"caption {j} of image {int(i)}" for j, i in enumerate(index)]
    return images, captions, index, pictures, texts


def _brute_top(queries, gallery, q, k):
    a = queries[q] / np.linalg.norm(queries[q])
    sims = [float(a @ (g / np.linalg.norm(g))) for g in gallery]
    return sorted(range(len(gallery)), key=lambda j: -sims[j])[:k]


def test_examples_are_the_brute_force_top_k_with_true_matches_marked():
    images, captions, index, pictures, texts = _case()
    ex = retrieval_examples(images, captions, index, ("image", pictures), ("text", texts), queries=3, k=4)
    (i2t, t2i) = ex.directions
    assert (i2t["query_kind"], i2t["item_kind"], t2i["query_kind"]) == ("image", "text", "text")
    assert [q["query"]["index"] for q in i2t["queries"]] == [0, 4, 8]  # spread over the 9 images
    assert [q["query"]["index"] for q in t2i["queries"]] == [0, 8, 17]  # linspace(0, 17, 3) rounded
    for q in i2t["queries"]:
        qi = q["query"]["index"]
        assert [t["index"] for t in q["top"]] == _brute_top(images.numpy(), captions.numpy(), qi, 4)
        assert [t["correct"] for t in q["top"]] == [int(index[t["index"]]) == qi for t in q["top"]]
        assert all(t["text"] == texts[t["index"]] for t in q["top"])
        assert q["query"]["thumbnail"] == f"image_{qi}.png"
    for q in t2i["queries"]:
        qj = q["query"]["index"]
        assert [t["index"] for t in q["top"]] == _brute_top(captions.numpy(), images.numpy(), qj, 4)
        assert [t["correct"] for t in q["top"]] == [t["index"] == int(index[qj]) for t in q["top"]]
    assert all(max(im.size) == 96 for im in ex.thumbnails.values())


def test_examples_round_trip_as_data_and_refuse_paths_outside_their_folder(tmp_path):
    images, captions, index, pictures, texts = _case()
    ex = retrieval_examples(images, captions, index, ("image", pictures), ("text", texts))
    folder = tmp_path / "eval_examples"
    write_examples(ex, folder)
    write_examples(ex, folder)  # replacing an existing folder
    assert read_examples(folder) == json.loads(json.dumps(ex.directions))
    assert sorted(p.name for p in folder.glob("*.png")) == sorted(ex.thumbnails)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*.old"))
    assert read_examples(tmp_path / "none") is None
    bad = json.loads((folder / "examples.json").read_text())
    bad["directions"][0]["queries"][0]["query"]["thumbnail"] = "../../secret.png"
    (folder / "examples.json").write_text(json.dumps(bad))
    with pytest.raises(RunDirError, match="leaves its folder"):
        read_examples(folder)
    (folder / "examples.json").write_text("{not json")
    with pytest.raises(RunDirError, match="multivic eval"):
        read_examples(folder)
