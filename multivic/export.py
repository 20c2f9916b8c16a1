"""Exported branches: weights as safetensors, architecture as JSON, loadable without the trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from multivic.branch import Branch, build_branch
from multivic.errors import RunDirError
from multivic.registry import import_modules
from multivic.run_dir import atomic_replace, atomic_write_text


def export_branch(
    branch: Branch, export_dir: Path, encoder: str, encoder_kwargs: dict[str, Any], imports: list[str] | None = None
) -> None:
    """Write ``<name>.safetensors`` (encoder and expander weights) and ``<name>.json``.

    ``imports`` lists the user modules that register the encoder, imported again on loading.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in branch.state_dict().items()}
    with atomic_replace(export_dir / f"{branch.name}.safetensors") as tmp:
        save_file(state, str(tmp))
    meta = {
        "name": branch.name,
        "encoder": encoder,
        "encoder_kwargs": dict(encoder_kwargs),
        "expander": branch.expander.spec,
        "modality": branch.modality,
        "representation_dim": branch.representation_dim,
        "embedding_dim": branch.embedding_dim,
        "imports": list(imports or []),
    }
    atomic_write_text(export_dir / f"{branch.name}.json", json.dumps(meta, indent=2) + "\n")


def exported_branch_names(run_or_export_dir: str | Path) -> list[str]:
    folder = _export_dir(Path(run_or_export_dir))
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.safetensors").is_file())


def _export_dir(path: Path) -> Path:
    return path / "export" if (path / "export").is_dir() else path


def load_branch(run_or_export_dir: str | Path, name: str, device: str | torch.device = "cpu") -> Branch:
    """The trained branch ``name`` (encoder + expander) from a run directory or its export folder,
    in eval mode. ``branch.encode(x)`` gives representations, ``branch(x)`` embeddings."""
    folder = _export_dir(Path(run_or_export_dir))
    meta_path, weights_path = folder / f"{name}.json", folder / f"{name}.safetensors"
    if not meta_path.is_file() or not weights_path.is_file():
        known = exported_branch_names(folder) if folder.is_dir() else []
        raise RunDirError(
            f"no exported branch {name!r} in {folder}; exported branches: {', '.join(known) or 'none (train first)'}"
        )
    meta = json.loads(meta_path.read_text())
    import_modules(meta.get("imports") or [])
    branch = build_branch(meta["name"], meta["encoder"], meta.get("encoder_kwargs") or {}, meta["expander"])
    branch.load_state_dict(load_file(str(weights_path)))
    return branch.to(device).eval()
