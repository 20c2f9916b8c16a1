"""The package indexes (the module lists in a package's docstring) name every module the
package holds, so they cannot go stale again."""

import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "multivic"


@pytest.mark.parametrize("package", ["train", "commands"])
def test_the_index_names_every_module(package):
    doc = importlib.import_module(f"multivic.{package}").__doc__ or ""
    modules = sorted(p.name for p in (PACKAGE / package).glob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if m not in doc]
    assert not missing, f"multivic/{package}/__init__.py's index lacks {missing}"
    listed = {w for w in doc.split() if w.endswith(".py")}
    assert listed <= set(modules), f"it lists modules that do not exist: {sorted(listed - set(modules))}"
