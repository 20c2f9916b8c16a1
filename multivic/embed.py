"""``multivic embed``: representations (or embeddings) of a folder of inputs with a trained branch.

Images and audio files are read and cropped as the run's evaluation does (its config.yaml).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from multivic.data.audio_io import load_mono
from multivic.data.audio_views import audio_eval_view
from multivic.data.image_folder import IMAGE_EXTENSIONS, files_with_suffixes, load_rgb
from multivic.data.image_views import image_eval_view
from multivic.data.paired import TextCollate
from multivic.errors import DataError, MultivicError
from multivic.export import load_branch
from multivic.run_dir import atomic_replace
from multivic.text.tokenizers import load_tokenizer

OUTPUT_FORMATS = (".npy", ".npz", ".parquet")


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


class _Files(Dataset):
    def __init__(self, paths: list[Path], load: Callable[[Path], torch.Tensor]) -> None:
        self.paths, self.load = paths, load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.load(self.paths[i])


def _list_files(folder: Path, extensions: tuple[str, ...], kind: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"--input {folder} is not a folder of {kind}")
    paths = files_with_suffixes(folder, extensions)
    if not paths:
        raise DataError(f"--input {folder} holds no {kind} ({', '.join(extensions[:3])}, ...)")
    return paths


Reader = Callable[[Path, dict, Path], tuple[Dataset, list[str], Callable | None]]


def _image_inputs(folder: Path, data: dict, run_root: Path) -> tuple[Dataset, list[str], None]:
    paths = _list_files(folder, IMAGE_EXTENSIONS, "images")
    view = image_eval_view(int(data["image_size"]))
    return _Files(paths, lambda p: view(load_rgb(p))), [str(p.relative_to(folder)) for p in paths], None


def _audio_inputs(folder: Path, data: dict, run_root: Path) -> tuple[Dataset, list[str], None]:
    paths = _list_files(folder, AUDIO_EXTENSIONS, "audio files")
    rate = int(data["sample_rate"])
    view = audio_eval_view(rate, float(data["crop_seconds"]))
    return _Files(paths, lambda p: view(load_mono(p, rate))), [str(p.relative_to(folder)) for p in paths], None


def _caption_inputs(path: Path, data: dict, run_root: Path) -> tuple[list[str], list[str], TextCollate]:
    """Captions from a text file (one per line) or a COCO captions JSON (its annotations),
    tokenised per batch with the run's tokenizer."""
    if not path.is_file():
        raise DataError(f"--input {path} is not a captions file (.txt, one caption per line, or a COCO captions .json)")
    if path.suffix == ".json":
        data_json = json.loads(path.read_text())
        if not isinstance(data_json, dict) or not isinstance(data_json.get("annotations"), list):
            raise DataError(f"--input {path} is not a COCO captions file: it has no 'annotations' list")
        texts = [str(a.get("caption", "")).strip() for a in data_json["annotations"]]
    else:
        texts = [line.strip() for line in path.read_text().splitlines()]
    texts = [t for t in texts if t]
    if not texts:
        raise DataError(f"--input {path} holds no captions")
    collate = TextCollate(load_tokenizer(run_root / "text"), int(data.get("max_caption_tokens", 32)))
    return texts, texts, collate


# Each modality's reader of a user's inputs, given the run's data settings and folder:
# (dataset, one name per row, the batch collate or None for stacking).
INPUT_READERS: dict[str, Reader] = {"image": _image_inputs, "waveform": _audio_inputs, "text": _caption_inputs}


def _run_root(run_dir: Path) -> Path:
    """The run directory, also when given its export/ folder."""
    return run_dir.parent if run_dir.name == "export" else run_dir


def _run_data_settings(run_root: Path) -> dict:
    config = run_root / "config.yaml"
    if not config.is_file():
        return {}
    return dict(OmegaConf.to_container(OmegaConf.load(config).data, resolve=True))  # type: ignore[arg-type]


def _to_device(x: Any, device: torch.device) -> Any:
    return {k: v.to(device) for k, v in x.items()} if isinstance(x, dict) else x.to(device)


def _write(out: Path, embeddings: np.ndarray, paths: list[str]) -> None:
    with atomic_replace(out) as tmp:
        if out.suffix == ".npy":
            np.save(tmp, embeddings)
        elif out.suffix == ".npz":
            with tmp.open("wb") as f:
                np.savez(f, embeddings=embeddings, inputs=np.array(paths))
        else:
            import pandas as pd

            pd.DataFrame({"input": paths, "embedding": list(embeddings)}).to_parquet(tmp, index=False)


@torch.no_grad()
def embed_inputs(
    run_dir: Path,
    branch_name: str,
    inputs: Path,
    out: Path,
    output: str = "representation",
    batch_size: int = 64,
    image_size: int | None = None,
) -> tuple[int, int]:
    """Embed every input under ``inputs`` with branch ``branch_name`` of ``run_dir``; write ``out``.

    Rows follow the sorted relative paths of the files, or the order of the captions (stored
    beside the vectors in .npz and .parquet as ``inputs`` / column ``input``).
    Returns (number of rows, width).
    """
    if out.suffix not in OUTPUT_FORMATS:
        raise MultivicError(f"--out {out}: unknown format {out.suffix!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    branch = load_branch(run_dir, branch_name, device)
    reader = INPUT_READERS.get(branch.modality)
    if reader is None:
        raise MultivicError(
            f"branch {branch_name!r} reads {branch.modality!r}; `multivic embed` reads: {', '.join(INPUT_READERS)}"
        )
    run_root = _run_root(run_dir)
    data = _run_data_settings(run_root)
    if image_size:
        data["image_size"] = image_size
    needed = {"image": ["image_size"], "waveform": ["sample_rate", "crop_seconds"]}.get(branch.modality, [])
    if any(k not in data for k in needed):
        raise MultivicError("no run config.yaml next to this export folder: pass --image-size, or embed from the run directory")
    dataset, names, collate = reader(inputs, data, run_root)
    rows = []
    for x in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
        r = branch.encode(_to_device(x, device))
        rows.append((r if output == "representation" else branch.expander(r)).float().cpu())
    embeddings = torch.cat(rows).numpy()
    _write(out, embeddings, names)
    return embeddings.shape[0], embeddings.shape[1]
