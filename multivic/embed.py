"""``multivic embed``: representations (or embeddings) of a folder of inputs with a trained branch.

Images and audio files are read and cropped as the run's evaluation does (its config.yaml).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from multivic.data.audio_io import load_mono
from multivic.data.audio_views import audio_eval_view
from multivic.data.image_folder import IMAGE_EXTENSIONS, load_rgb
from multivic.data.image_views import image_eval_view
from multivic.errors import DataError, MultivicError
from multivic.export import load_branch

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
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    if not paths:
        raise DataError(f"--input {folder} holds no {kind} ({', '.join(extensions[:3])}, ...)")
    return paths


def _image_inputs(folder: Path, data: dict) -> tuple[Dataset, list[Path]]:
    paths = _list_files(folder, IMAGE_EXTENSIONS, "images")
    view = image_eval_view(int(data["image_size"]))
    return _Files(paths, lambda p: view(load_rgb(p))), paths


def _audio_inputs(folder: Path, data: dict) -> tuple[Dataset, list[Path]]:
    paths = _list_files(folder, AUDIO_EXTENSIONS, "audio files")
    rate = int(data["sample_rate"])
    view = audio_eval_view(rate, float(data["crop_seconds"]))
    return _Files(paths, lambda p: view(load_mono(p, rate))), paths


# Each modality's reader of a user's input folder, given the run's data settings.
INPUT_READERS: dict[str, Callable[[Path, dict], tuple[Dataset, list[Path]]]] = {
    "image": _image_inputs,
    "waveform": _audio_inputs,
}


def _run_data_settings(run_dir: Path) -> dict:
    for folder in (run_dir, run_dir.parent):  # a run directory, or its export/ folder
        if (folder / "config.yaml").is_file():
            return dict(OmegaConf.to_container(OmegaConf.load(folder / "config.yaml").data, resolve=True))  # type: ignore[arg-type]
    return {}


def _write(out: Path, embeddings: np.ndarray, paths: list[str]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if out.suffix == ".npy":
            np.save(tmp, embeddings)
        elif out.suffix == ".npz":
            with tmp.open("wb") as f:
                np.savez(f, embeddings=embeddings, paths=np.array(paths))
        else:
            import pandas as pd

            pd.DataFrame({"path": paths, "embedding": list(embeddings)}).to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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

    Rows follow the sorted relative paths (stored beside the vectors in .npz and .parquet).
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
    data = _run_data_settings(run_dir)
    if image_size:
        data["image_size"] = image_size
    needed = {"image": ["image_size"], "waveform": ["sample_rate", "crop_seconds"]}.get(branch.modality, [])
    if any(k not in data for k in needed):
        raise MultivicError("no run config.yaml next to this export folder: pass --image-size, or embed from the run directory")
    dataset, paths = reader(inputs, data)
    names = [str(p.relative_to(inputs)) for p in paths]
    rows = []
    for x in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        r = branch.encode(x.to(device))
        rows.append((r if output == "representation" else branch.expander(r)).float().cpu())
    embeddings = torch.cat(rows).numpy()
    _write(out, embeddings, names)
    return embeddings.shape[0], embeddings.shape[1]
