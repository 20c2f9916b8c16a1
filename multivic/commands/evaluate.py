"""``multivic eval``: the data format's evaluation protocol on a run's exported branches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from multivic.build import build_data, build_eval_settings
from multivic.config import RecipeConfig, load_config
from multivic.data.formats import DataSetup
from multivic.errors import RunDirError
from multivic.evaluation.examples import write_examples
from multivic.evaluation.protocols import protocol_named
from multivic.export import export_dir_of, exported_branch_names, load_branch
from multivic.modalities import Modality
from multivic.registry import ENCODERS, FORMATS, MODALITIES, OBJECTIVES, Registry, code_needed
from multivic.run_dir import RunDir
from multivic.trust import refuse_untrusted_urls

# The names a run config gives to registries, with the schema's defaults.
_NAMED = (
    ("model.branch_a.encoder", ENCODERS, "resnet50"),
    ("model.branch_b.encoder", ENCODERS, "resnet50"),
    ("loss.name", OBJECTIVES, "vicreg"),
    ("data.format", FORMATS, "image_folder"),
)


def load_run_config(
    run_dir: RunDir, overrides: list[str] | None = None, trust_imports: bool = False, trust_commands: bool = False
) -> RecipeConfig:
    """The run's config.yaml with ``overrides`` applied.

    The config's ``imports:`` are modules named by a file in the run directory: they are
    imported only with ``trust_imports``. Without it, a config whose encoders, objective, data
    format and modalities are all registered loads without them; any other is a RunDirError
    naming the modules. (``multivic train`` imports a recipe's ``imports:``: the user wrote it.)

    Likewise its ``data.*`` values (``data.shards``, ``data.val_shards``) may name a command
    (``pipe:``) or a remote URL only with ``trust_commands`` (``--trust-commands``); a value the
    user sets in ``overrides`` is theirs (see :func:`multivic.trust.refuse_untrusted_urls`).
    """
    raw = run_dir.read_config_data()  # a regular file of sane size and plain YAML, or a one-line error
    overrides = list(overrides or [])
    given = {item.partition("=")[0].strip() for item in overrides}
    for key, value in _data_values(raw.get("data")):
        if key not in given and not any(key.startswith(g + ".") for g in given):
            refuse_untrusted_urls(value, f"{run_dir.config} ({key})", error=RunDirError, trusted=trust_commands)
    if not trust_imports:
        needed = _code_needed_by_config(run_dir.config, overrides)
        if needed is not None:
            modules, what = needed
            raise RunDirError(
                f"{run_dir.config} needs modules {modules} to build {what}; importing runs their code: "
                "pass --trust-imports if you trust this run directory (or import them yourself)"
            )
        overrides = ["imports=[]", *overrides]  # before the user's: an `imports=...` of theirs still wins
    return load_config(run_dir.config, overrides, legacy=True)


def _data_values(data: Any, prefix: str = "data") -> list[tuple[str, Any]]:
    """(dotted key, value) of every string or list of strings under ``data``: where a data format
    may find shard locations (``data.shards``, ``data.val_shards``, a plug-in's own)."""
    if isinstance(data, dict):
        return [kv for k, v in data.items() for kv in _data_values(v, f"{prefix}.{k}")]
    if isinstance(data, str) or (isinstance(data, list) and data and all(isinstance(v, str) for v in data)):
        return [(prefix, data)]
    if isinstance(data, list):
        return [kv for i, v in enumerate(data) for kv in _data_values(v, f"{prefix}[{i}]")]
    return []


def _code_needed_by_config(path: Path, overrides: list[str]) -> tuple[list[str], str] | None:
    """What loading the config at ``path`` would import (see :func:`code_needed`); names the
    user's overrides set are theirs and not checked."""
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path))
    except Exception:  # load_config reports it, before it imports anything
        return None
    given = {item.partition("=")[0].strip() for item in overrides}
    imports = [] if "imports" in given else [str(m) for m in _at(raw, "imports", None) or []]
    names: list[tuple[Registry, str]] = [
        (registry, str(_at(raw, key, default))) for key, registry, default in _NAMED if key not in given
    ]
    fmt = str(_at(raw, "data.format", "image_folder"))
    if "data.format" not in given and FORMATS.resolves_without_code(fmt):
        try:
            names += [(MODALITIES, str(m)) for m in FORMATS.get(fmt).factory.modalities]
        except Exception:  # a broken plug-in: load_config reports it
            pass
    return code_needed(names, imports)


def _at(raw: Any, dotted: str, default: Any) -> Any:
    """``raw[a][b]...`` for the key "a.b..."; ``default`` where a level is missing or not a mapping."""
    for part in dotted.split("."):
        if not isinstance(raw, dict) or raw.get(part) is None:
            return default
        raw = raw[part]
    return raw


def evaluate(
    cfg: RecipeConfig,
    run_dir: RunDir,
    device: torch.device | None = None,
    data: DataSetup | None = None,
    trust_imports: bool = False,
) -> dict[str, float]:
    """Evaluate every exported branch of ``run_dir`` on the recipe's data; update metrics.json,
    write eval_arrays.safetensors (spectra, per-dimension std) and, for retrieval, eval_examples/.

    ``trust_imports``: import the modules the exports list (see :func:`load_branch`)."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = exported_branch_names(run_dir.root)
    if not names:
        raise RunDirError(
            f"{run_dir.root} has no exported branches yet: train it first (multivic train ... --output-dir "
            f"{run_dir.root})"
        )
    data = data or build_data(cfg)
    branches = {n: load_branch(run_dir.root, n, device, trust_imports) for n in names}
    for name, branch in branches.items():
        branch.preprocess = run_pipeline(name, branch.modality, data.modalities, run_dir)
    metrics = run_dir.read_metrics()
    result = protocol_named(data.format.protocol)(data, branches, device, build_eval_settings(cfg))
    metrics.update(result.metrics)
    run_dir.write_metrics(metrics)
    run_dir.write_eval_arrays(result.arrays)
    if result.examples is not None:
        write_examples(result.examples, run_dir.eval_examples)
    return metrics


def run_pipeline(name: str, modality_name: str, modalities: dict[str, Modality], run_dir: RunDir) -> Modality:
    """The input pipeline of exported branch ``name`` as the run config defines it, so ``data.*``
    overrides of ``multivic eval`` apply to reading and viewing alike, with the fitted state (a
    tokenizer) of its export, or of the run directory for exports without one (multivic 0.1)."""
    modality = modalities.get(modality_name)
    if modality is None:
        raise RunDirError(
            f"branch {name!r} reads {modality_name!r}, which the data format of {run_dir.root} does not provide"
        )
    if modality.needs_fitting and not modality.is_fitted():
        exported = export_dir_of(run_dir.root) / f"{name}.state"
        modality.load(exported if exported.is_dir() else run_dir.modality_state(modality_name))
    return modality


def format_metrics(metrics: dict[str, float]) -> str:
    """A small table: one row per branch, one column per metric."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        branch, _, metric = key.rpartition("/")
        rows.setdefault(branch or "both", {})[metric] = value
    columns = [
        "linear_top1",
        "linear_top5",
        "knn_top1",
        "linear_top1_cv5_seen",
        "knn_top1_cv5_seen",
        "std_mean",
        "rankme",
    ]
    columns += sorted({m for r in rows.values() for m in r} - set(columns))
    columns = [c for c in columns if any(c in r for r in rows.values())]
    width = max([6] + [len(b) for b in rows])
    cols = {c: max(16, len(c) + 2) for c in columns}
    lines = ["branch".ljust(width) + "".join(c.rjust(cols[c]) for c in columns)]
    for branch, vals in sorted(rows.items()):
        cells = "".join((f"{vals[c]:.2f}" if c in vals else "-").rjust(cols[c]) for c in columns)
        lines.append(branch.ljust(width) + cells)
    return "\n".join(lines)
