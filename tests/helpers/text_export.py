"""A tiny exported text branch (a GRU over a word vocabulary) for the hostile-export tests."""

from pathlib import Path

from multivic.branch import build_branch
from multivic.export import export_branch
from multivic.modalities import create_modality

CAPTIONS = ["a red circle", "a blue square", "a green star"]


def write_text_export(folder: Path, name: str = "txt") -> Path:
    """``folder``/txt.json, txt.safetensors and txt.state/vocabulary.json; returns ``folder``."""
    text = create_modality("text")
    text.fit(CAPTIONS)
    kwargs = {"embed_dim": 8, "hidden_dim": 8, "pooling": "last", **text.encoder_kwargs()}
    branch = build_branch(name, "gru", kwargs, "8-8")
    branch.preprocess = text
    export_branch(branch, folder, "gru", kwargs)
    return folder
