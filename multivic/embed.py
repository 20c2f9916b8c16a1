"""``multivic embed``: representations (or embeddings) of a folder of inputs with a trained branch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from multivic.data.image_folder import IMAGE_EXTENSIONS, load_rgb
from multivic.data.image_views import image_eval_view
from multivic.errors import DataError, MultivicError
from multivic.export import load_branch

OUTPUT_FORMATS = (".npy", ".npz", ".parquet")


class _ImageFiles(Dataset):
    def __init__(self, paths: list[Path], transform: Callable) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.transform(load_rgb(self.paths[i]))


def _image_inputs(folder: Path, image_size: int) -> tuple[Dataset, list[str]]:
    if not folder.is_dir():
        raise DataError(f"--input {folder} is not a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise DataError(f"--input {folder} holds no images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...)")
    return _ImageFiles(paths, image_eval_view(image_size)), [str(p.relative_to(folder)) for p in paths]


# Each modality's reader of a user's input folder or file.
INPUT_READERS: dict[str, Callable[[Path, int], tuple[Dataset, list[str]]]] = {"image": _image_inputs}


def _run_image_size(run_dir: Path) -> int | None:
    config = run_dir / "config.yaml"
    if config.is_file():
        return int(OmegaConf.load(config).data.image_size)
    return None


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
    size = image_size or _run_image_size(run_dir) or _run_image_size(run_dir.parent)
    if size is None:
        raise MultivicError("no image size known for this export folder: pass --image-size")
    dataset, names = reader(inputs, size)
    rows = []
    for x in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        r = branch.encode(x.to(device))
        rows.append((r if output == "representation" else branch.expander(r)).float().cpu())
    embeddings = torch.cat(rows).numpy()
    _write(out, embeddings, names)
    return embeddings.shape[0], embeddings.shape[1]
