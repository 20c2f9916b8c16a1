"""Exported branches that stand alone: weights as safetensors, architecture and input pipeline as
JSON, a fitted modality state (a tokenizer) as data files beside them.

    export/<branch>.safetensors    encoder + expander weights
    export/<branch>.json           encoder name and arguments, expander, widths, imports, and
                                   "preprocess": the modality and its options (image size,
                                   sample rate, crop, tokenizer settings)
    export/<branch>.state/         the modality's fitted state, when it has one (a tokenizer)

:func:`load_branch` rebuilds the branch with its input pipeline (``branch.preprocess``), so an
export folder copied anywhere is enough for ``multivic embed`` and for users' own code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from multivic.branch import Branch, build_branch
from multivic.errors import RunDirError
from multivic.modalities import create_modality
from multivic.registry import ENCODERS, MODALITIES, code_needed, import_modules
from multivic.run_dir import atomic_replace, atomic_write_text


def export_branch(
    branch: Branch, export_dir: Path, encoder: str, encoder_kwargs: dict[str, Any], imports: list[str] | None = None
) -> None:
    """Write ``<name>.safetensors``, ``<name>.json`` and, for a fitted modality, ``<name>.state/``.

    ``imports`` lists the user modules that register the encoder (or its modality), imported
    again on loading when the loader trusts them (``load_branch(..., trust_imports=True)``).
    """
    # An encoder wrapped by torch.compile() (not multivic's model.compile, which keeps the keys)
    # prefixes its keys with "_orig_mod."; the export holds the eager module's keys.
    state = {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in branch.state_dict().items()}
    with atomic_replace(export_dir / f"{branch.name}.safetensors") as tmp:
        save_file(state, str(tmp))
    meta: dict[str, Any] = {
        "name": branch.name,
        "encoder": encoder,
        "encoder_kwargs": dict(encoder_kwargs),
        "expander": branch.expander.spec,
        "modality": branch.modality,
        "representation_dim": branch.representation_dim,
        "embedding_dim": branch.embedding_dim,
        "imports": list(imports or []),
    }
    pipeline = branch.preprocess
    if pipeline is not None:
        meta["preprocess"] = {"modality": pipeline.name, "options": pipeline.options()}
        if pipeline.needs_fitting:
            _replace_folder(export_dir / f"{branch.name}.state", pipeline.save)
    atomic_write_text(export_dir / f"{branch.name}.json", json.dumps(meta, indent=2) + "\n")


def _replace_folder(folder: Path, write) -> None:
    """``write(tmp)`` into a sibling temporary folder, then swap it in for ``folder``."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def exported_branch_names(run_or_export_dir: str | Path) -> list[str]:
    folder = export_dir_of(Path(run_or_export_dir))
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.safetensors").is_file())


def export_dir_of(path: Path) -> Path:
    """The export folder of a run directory, or ``path`` itself when it is one."""
    return path / "export" if (path / "export").is_dir() else path


def load_branch(
    run_or_export_dir: str | Path, name: str, device: str | torch.device = "cpu", trust_imports: bool = False
) -> Branch:
    """The trained branch ``name`` from a run directory or an export folder, in eval mode, with
    its input pipeline: ``branch.encode(x)`` gives representations, ``branch(x)`` embeddings,
    ``branch.preprocess`` reads files (``read_file``), views them (``eval_view()``) and batches
    them (``collate()``) as the run's evaluation did.

    An export is read as data: the modules its json lists under ``imports`` (and the module of
    an import-path encoder) are imported only with ``trust_imports=True``, since importing runs
    their code. Without it, a branch whose encoder and modality are already registered (built
    in, or the user imported their module) loads; any other is a RunDirError naming the modules.
    """
    folder = export_dir_of(Path(run_or_export_dir))
    meta_path, weights_path = folder / f"{name}.json", folder / f"{name}.safetensors"
    known = exported_branch_names(folder) if folder.is_dir() else []
    if name not in known:  # also refuses names that leave the folder ("../x")
        raise RunDirError(
            f"no exported branch {name!r} in {folder}; exported branches: {', '.join(known) or 'none (train first)'}"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{meta_path} is not valid JSON ({exc}): re-export the run") from None
    imports = [str(m) for m in meta.get("imports") or []]
    pre = meta.get("preprocess")
    if trust_imports:
        import_modules(imports)
    else:
        names = [(ENCODERS, str(meta["encoder"]))] + ([(MODALITIES, str(pre["modality"]))] if pre is not None else [])
        needed = code_needed(names, imports)
        if needed is not None:
            modules, what = needed
            raise RunDirError(
                f"{meta_path} needs modules {modules} to build {what}; importing runs their code: "
                "pass --trust-imports if you trust this export (or import them yourself)"
            )
    branch = build_branch(meta["name"], meta["encoder"], meta.get("encoder_kwargs") or {}, meta["expander"])
    branch.load_state_dict(load_file(str(weights_path)))
    if pre is not None:
        branch.preprocess = create_modality(pre["modality"], pre.get("options") or {})
        if branch.preprocess.needs_fitting:
            branch.preprocess.load(folder / f"{name}.state")
    return branch.to(device).eval()
