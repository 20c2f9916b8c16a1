"""``multivic embed``: representations (or embeddings) of a user's inputs with an exported branch.

The branch's export carries its input pipeline (modality, options, fitted state), so an export
folder copied anywhere is enough: files are read and cropped as the run's evaluation does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from multivic.config import MAX_WORKERS
from multivic.errors import ConfigError, DataError, MultivicError
from multivic.evaluation.embed import embed_dataset
from multivic.export import load_branch
from multivic.files import first_line
from multivic.run_dir import RunDir, atomic_replace

OUTPUT_FORMATS = (".npy", ".npz", ".parquet")


def _write(out: Path, embeddings: np.ndarray, names: list[str]) -> None:
    with atomic_replace(out) as tmp:
        if out.suffix == ".npy":
            np.save(tmp, embeddings)
        elif out.suffix == ".npz":
            with tmp.open("wb") as f:
                np.savez(f, embeddings=embeddings, inputs=np.array(names))
        else:
            import pandas as pd

            pd.DataFrame({"input": names, "embedding": list(embeddings)}).to_parquet(tmp, index=False)


def _pipeline_of_run(path: Path, branch_name: str, modality: str, trust_imports: bool):
    """The input pipeline of an export made by multivic 0.1 (which did not record it), from the
    config.yaml of the run directory around it."""
    from multivic.build import build_modalities
    from multivic.commands.evaluate import load_run_config, run_pipeline

    run_root = path.parent if path.name == "export" else path
    if not (run_root / "config.yaml").is_file():
        raise MultivicError(
            f"the export of {branch_name!r} records no input pipeline (made by multivic 0.1): embed from its run "
            "directory"
        )
    run_dir = RunDir(run_root)
    # Only the modalities are built from the config: its data.* shard locations are never opened here.
    cfg = load_run_config(run_dir, trust_imports=trust_imports, trust_commands=True)
    return run_pipeline(branch_name, modality, build_modalities(cfg), run_dir)


def _read_inputs(pipeline: Any, inputs: Path) -> tuple[Any, list[str]]:
    """The modality's items of ``--input`` (a folder of files, a captions file). The file is the
    user's, maybe from elsewhere: what its reader cannot take (JSON that is not captions, text that
    is not UTF-8, nesting too deep) is a DataError naming it, never a traceback."""
    try:
        return pipeline.embed_inputs(inputs)
    except MultivicError:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError, OSError) as exc:
        raise DataError(
            f"--input {inputs} cannot be read as {pipeline.name} inputs ({type(exc).__name__}: {first_line(exc)}): "
            "give a folder of files, or a captions file (.txt of UTF-8 lines, or a COCO captions .json)"
        ) from None


def embed_inputs(
    run_or_export_dir: Path,
    branch_name: str,
    inputs: Path,
    out: Path,
    output: str = "representation",
    batch_size: int = 64,
    num_workers: int = 0,
    trust_imports: bool = False,
) -> tuple[int, int]:
    """Embed every input under ``inputs`` with branch ``branch_name``; write ``out``.

    Rows follow the sorted relative paths of the files, or the order of the captions (stored
    beside the vectors in .npz and .parquet as ``inputs`` / column ``input``).
    Returns (number of rows, width). ``trust_imports``: import the modules the export lists
    (see :func:`multivic.export.load_branch`).
    """
    if out.suffix not in OUTPUT_FORMATS:
        raise MultivicError(f"--out {out}: unknown format {out.suffix!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    if batch_size < 1 or not 0 <= num_workers <= MAX_WORKERS:
        raise ConfigError(
            f"--batch-size must be >= 1 and --num-workers in [0, {MAX_WORKERS}]; got {batch_size} and {num_workers}"
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    branch = load_branch(run_or_export_dir, branch_name, device, trust_imports)
    pipeline = branch.preprocess or _pipeline_of_run(run_or_export_dir, branch_name, branch.modality, trust_imports)
    dataset, names = _read_inputs(pipeline, inputs)
    result = embed_dataset(
        branch, dataset, device, collate=pipeline.collate(), batch_size=batch_size, num_workers=num_workers
    )
    embeddings = (result.representations if output == "representation" else result.embeddings).numpy()
    _write(out, embeddings, names)
    return embeddings.shape[0], embeddings.shape[1]
