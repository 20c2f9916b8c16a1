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
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from multivic.branch import Branch, build_branch
from multivic.errors import MultivicError, RunDirError
from multivic.expander import parse_expander_spec
from multivic.files import check_regular_file, first_line, leads_outside, link_leading_outside, read_json_file
from multivic.modalities import create_modality
from multivic.registry import ENCODERS, MODALITIES, code_needed, import_modules
from multivic.run_dir import atomic_replace, atomic_write_text, remove_path

# What an export's json may ask for: it is data from elsewhere, and a tampered value must not
# exhaust memory (a 10^6-pixel image size, a 10^9-wide expander) before anything is checked.
MAX_EXPANDER_WIDTH = 1 << 17
MAX_EXPANDER_LAYERS = 64
MAX_NUMBER = 10**7  # any number among encoder_kwargs and preprocessing options
# The modalities bound their own options (an image size, a sample rate): the preprocessing
# options are checked by building the modality from them, which allocates nothing.


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
    bad = _not_finite(state)
    if bad:
        raise MultivicError(
            f"the trained weights of branch {branch.name!r} hold NaN or infinite values ({bad}): not exported; "
            "training "
            "diverged: lower optim.base_lr or set train.clip_grad_norm, then train from an earlier checkpoint or afresh"
        )
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
    remove_path(tmp)  # a link left there is removed, never followed
    write(tmp)
    remove_path(folder)
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
    fix = "copy the export again, or export it again (run the run's `multivic train` command once more)"
    _check_inside(Path(run_or_export_dir), folder, name, fix)
    meta = read_json_file(meta_path, fix)
    problem = _meta_problem(meta)
    if problem:
        raise RunDirError(f"{meta_path} is damaged or was altered ({problem}): {fix}")
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
    check_regular_file(weights_path, fix)
    shapes = _weight_shapes(weights_path, fix)
    branch = _build_checked(meta, meta_path, shapes, fix)
    try:
        state = load_file(str(weights_path))
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: the file is the problem
        raise RunDirError(f"{weights_path} is damaged ({first_line(exc)}): {fix}") from None
    bad = _not_finite(state)
    if bad:
        raise RunDirError(
            f"{weights_path} holds NaN or infinite weights ({bad}): the run diverged or the file was altered; "
            "export a checkpoint from before it diverged"
        )
    try:
        branch.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise RunDirError(f"{weights_path} does not fit {meta_path.name} ({first_line(exc)}): {fix}") from None
    if pre is not None:
        try:
            branch.preprocess = create_modality(pre["modality"], pre.get("options") or {})
        except Exception as exc:  # noqa: BLE001 - a modality's own checks of its options
            raise RunDirError(
                f"{meta_path} has preprocessing options {pre['modality']} does not accept ({first_line(exc)}): {fix}"
            ) from None
        if branch.preprocess.needs_fitting:
            state_dir = folder / f"{name}.state"
            try:
                branch.preprocess.load(state_dir)
            except MultivicError:
                raise
            except Exception as exc:  # noqa: BLE001 - a damaged fitted state (a tokenizer's files)
                raise RunDirError(f"{state_dir} is damaged ({first_line(exc)}): {fix}") from None
    return branch.to(device).eval()


def _check_inside(given: Path, folder: Path, name: str, fix: str) -> None:
    """RunDirError when the branch's files, or a run directory's export/ folder, link outside what
    the user named: an export is read as data from its own folder only."""
    if folder != given and leads_outside(folder, given):
        raise RunDirError(f"{folder} leads outside the run directory {given}: {fix}")
    state = folder / f"{name}.state"
    for path in (folder / f"{name}.json", folder / f"{name}.safetensors", state):
        if os.path.lexists(path) and leads_outside(path, folder):
            raise RunDirError(f"{path} leads outside {folder} (a symbolic link): {fix}")
    link = link_leading_outside(state) if state.is_dir() else None
    if link is not None:  # a tokenizer file from another folder would shape the embeddings
        raise RunDirError(f"{link} leads outside {state} (a symbolic link): {fix}")


def _not_finite(state: dict[str, torch.Tensor]) -> str:
    """'<count> values of <key>' for the first floating tensor with NaN or inf ('' when none)."""
    for key, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                return f"{bad} of the {tensor.numel()} values of {key!r}"
    return ""


def _meta_problem(meta: dict[str, Any]) -> str | None:
    """What is wrong with an export json's content (types and bounds), None when nothing."""
    for key in ("name", "encoder"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            return f"{key!r} is not a name"
    if not isinstance(meta.get("encoder_kwargs", {}) or {}, dict):
        return "'encoder_kwargs' is not an object"
    if not isinstance(meta.get("imports", []) or [], list):
        return "'imports' is not a list"
    expander = meta.get("expander")
    if not isinstance(expander, (str, int)) or isinstance(expander, bool):
        return "'expander' is not a spec such as '8192-8192-8192'"
    try:
        widths = parse_expander_spec(str(expander))
    except MultivicError:
        return f"'expander' is not a spec such as '8192-8192-8192' ({str(expander)[:40]!r})"
    if len(widths) > MAX_EXPANDER_LAYERS or any(w > MAX_EXPANDER_WIDTH for w in widths):
        return (
            f"the expander asks for {len(widths)} layers up to {max(widths)} wide, "
            f"over the bounds {MAX_EXPANDER_LAYERS} × {MAX_EXPANDER_WIDTH}"
        )
    problem = _numbers_problem(meta.get("encoder_kwargs") or {}, "encoder_kwargs", {})
    if problem:
        return problem
    pre = meta.get("preprocess")
    if pre is not None:
        if (
            not isinstance(pre, dict)
            or not isinstance(pre.get("modality"), str)
            or not isinstance(pre.get("options", {}) or {}, dict)
        ):
            return "'preprocess' is not {'modality': name, 'options': {...}}"
        return _numbers_problem(pre.get("options") or {}, "preprocess.options", {})
    return None


def _numbers_problem(values: Any, where: str, bounds: dict[str, tuple[float, float]], depth: int = 0) -> str | None:
    """The first number under ``values`` that is not finite or is outside its bounds."""
    if depth > 8:
        return f"{where} is nested too deeply"
    if isinstance(values, dict):
        items = list(values.items())
    elif isinstance(values, list):
        if len(values) > 4096:
            return f"{where} holds {len(values)} values"
        items = list(enumerate(values))
    else:
        return None
    for key, value in items:
        path = f"{where}.{key}"
        if isinstance(value, (dict, list)):
            problem = _numbers_problem(value, path, {}, depth + 1)
            if problem:
                return problem
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high = bounds.get(str(key), (-MAX_NUMBER, MAX_NUMBER))
        if not (math.isfinite(value) and low <= value <= high):
            return f"{path} is {value!r}, outside [{low:g}, {high:g}]"
    return None


def _weight_shapes(path: Path, fix: str) -> dict[str, tuple[int, ...]]:
    """The tensors' shapes in a safetensors file's header (nothing else is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: the file is the problem
        raise RunDirError(f"{path} is damaged ({first_line(exc)}): {fix}") from None


def _build_checked(meta: dict[str, Any], meta_path: Path, shapes: dict[str, tuple[int, ...]], fix: str) -> Branch:
    """The branch the json describes, built for real only once its shapes, built on the meta
    device (no memory), match the weights file: a tampered json cannot ask for more memory than
    its weights file holds."""
    args = (meta["name"], meta["encoder"], meta.get("encoder_kwargs") or {}, str(meta["expander"]))

    def build() -> Branch:
        try:
            return build_branch(*args)
        except Exception as exc:  # noqa: BLE001 - an encoder factory's own refusal of its arguments
            raise RunDirError(
                f"{meta_path} describes a branch that cannot be built ({first_line(exc)}): {fix}"
            ) from None

    try:
        with torch.device("meta"):
            planned = build_branch(*args)
    except Exception:  # noqa: BLE001 - some encoders cannot be built on the meta device: build for real below
        planned = None
    if planned is not None:
        want = {k: tuple(v.shape) for k, v in planned.state_dict().items()}
        if want != shapes:
            differ = sorted(set(want) ^ set(shapes)) or sorted(k for k in want if want[k] != shapes[k])
            raise RunDirError(f"{meta_path} does not match its weights file (e.g. {differ[0]!r}): {fix}")
    return build()
