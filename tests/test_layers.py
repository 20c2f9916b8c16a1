"""The package's layers, kept by a test: data flows one way (recipe → config → build →
components → train loop → run directory → evaluation/report → commands → CLI), so a module
never imports one of a higher layer, nor another package's private names or modules.

Imports inside functions count too: a lazy import is still an edge."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "multivic"

# Lowest first. A unit (a top-level module or package of multivic) may import units of its own
# layer's predecessors; units of one layer may not import each other.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "version"),
    ("registry", "options", "trust", "files", "distributed", "text", "collapse"),
    ("expander", "objectives", "modalities", "encoders"),
    ("data", "branch"),
    ("optim", "run_dir"),
    ("weights",),
    ("evaluation", "export", "train", "preflight"),
    ("report",),
    ("config",),
    ("build",),
    ("commands",),
    ("cli",),
    ("__main__",),
    ("__init__",),  # the public API: re-exports from anywhere below
]
LAYER_OF = {unit: n for n, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) of every import of multivic, relative ones resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "multivic"]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([target] if target else []))
            if target.split(".")[0] == "multivic":
                found.append((target, [a.name for a in node.names], node.lineno))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def violations(root: Path = PACKAGE) -> list[str]:
    """Every back-edge and private import under the package folder ``root``, as readable lines."""
    out = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        unit = _unit(module)
        if unit not in LAYER_OF:
            out.append(f"{module}: unit {unit!r} has no layer in tests/test_layers.py LAYERS: add it")
            continue
        for target, names, line in _imports(ast.parse(path.read_text()), module, path.name == "__init__.py"):
            where = f"{path.relative_to(root.parent)}:{line}"
            other = _unit(target)
            if other != unit and other in LAYER_OF and LAYER_OF[other] >= LAYER_OF[unit] and unit != "__init__":
                out.append(f"{where}: {module} (layer {LAYER_OF[unit]}) imports {target} (layer {LAYER_OF[other]})")
            # Private modules are their package's own; private names their module's own.
            private_parts = [p for p in target.split(".") if _private(p)]
            if private_parts:
                owner = target[: target.index("." + private_parts[0])]
                if not module.startswith(owner + ".") and module != owner:
                    out.append(f"{where}: {module} imports the private module {target}")
            for name in names:
                if _private(name):
                    out.append(f"{where}: {module} imports the private name {name} from {target}")
    return out


def test_no_module_imports_a_higher_layer_or_a_private_name():
    assert violations() == []


def test_every_unit_of_the_package_has_a_layer():
    units = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or p.is_dir()) and p.name != "__pycache__"
    }
    assert units <= set(LAYER_OF), sorted(units - set(LAYER_OF))


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "multivic"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_planted_back_edge_is_caught(tmp_path):
    root = _copy(tmp_path)
    with open(root / "data" / "loader.py", "a") as f:  # data reaching up to the trainer, lazily
        f.write("\n\ndef _planted():\n    from multivic.train.loop import fit\n    return fit\n")
    assert violations(root) == [
        f"multivic/data/loader.py:{len((root / 'data' / 'loader.py').read_text().splitlines()) - 1}: "
        "multivic.data.loader (layer 3) imports multivic.train.loop (layer 6)"
    ]


def test_planted_private_imports_are_caught(tmp_path):
    root = _copy(tmp_path)
    (root / "report" / "planted.py").write_text(
        "from multivic.data.builtin.shapes import _random_colour\nimport multivic.objectives._base\n"
    )
    found = violations(root)
    assert any("imports the private name _random_colour" in v for v in found)
    assert any("imports the private module multivic.objectives._base" in v for v in found)
