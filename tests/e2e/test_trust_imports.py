"""Exports and run directories are read as data: the modules they name are imported only when
the user passes --trust-imports (trust_imports=True), since importing a module runs its code."""

import json
import sys
from pathlib import Path

import pytest

from multivic import registry
from multivic.branch import build_branch
from multivic.cli import main
from multivic.errors import RunDirError
from multivic.export import export_branch, load_branch
from multivic.modalities import create_modality
from tests.helpers.recipes import TINY_RECIPE

# A user module registering an encoder; importing it leaves a marker file, so a test can tell
# whether its code ran.
MODULE = """
from pathlib import Path
from torch import nn
from multivic import register_encoder

Path({marker!r}).write_text("imported")


class Pool(nn.Module):
    modality = "image"

    def __init__(self, width):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.out_dim = width

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


@register_encoder({name!r}, modality="image")
def pool(width: int = 4):
    return Pool(width)
"""


class Plugin:
    def __init__(self, tmp_path: Path) -> None:
        stem = f"trust_plugin_{tmp_path.name.replace('-', '_')}"
        self.encoder = f"{stem}_pool"
        self.marker = tmp_path / "module_ran"
        self.path = tmp_path / f"{stem}.py"
        self.path.write_text(MODULE.format(marker=str(self.marker), name=self.encoder))
        self.module = f"multivic_user_{stem}"

    def forget(self) -> None:
        """The state of a fresh process: the encoder unregistered, the module not imported, no marker."""
        registry.ENCODERS._entries.pop(self.encoder, None)
        sys.modules.pop(self.module, None)
        self.marker.unlink(missing_ok=True)

    def ran(self) -> bool:
        return self.marker.is_file()


@pytest.fixture
def plugin(tmp_path):
    p = Plugin(tmp_path)
    yield p
    p.forget()


def _export(plugin: Plugin, folder: Path, image_size: int = 16) -> Path:
    """An export of branch "tiny" with the plug-in encoder, recording the plug-in in its imports."""
    registry.import_modules([str(plugin.path)])
    branch = build_branch("tiny", plugin.encoder, {"width": 4}, "8-8")
    branch.preprocess = create_modality("image", {"image_size": image_size})
    export_branch(branch, folder, plugin.encoder, {"width": 4}, imports=[str(plugin.path)])
    plugin.forget()
    return folder


def test_an_export_does_not_import_its_modules_unless_trusted(plugin, tmp_path):
    folder = _export(plugin, tmp_path / "export")
    with pytest.raises(RunDirError) as err:
        load_branch(folder, "tiny")
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"{folder / 'tiny.json'} needs modules {[str(plugin.path)]} to build encoder {plugin.encoder!r}; importing "
        "runs "
        "their code: pass --trust-imports if you trust this export (or import them yourself)"
    )
    assert not plugin.ran()

    branch = load_branch(folder, "tiny", trust_imports=True)
    assert plugin.ran() and branch.representation_dim == 4


def test_an_export_loads_without_importing_when_its_encoder_is_registered(plugin, tmp_path):
    folder = _export(plugin, tmp_path / "export")
    registry.import_modules([str(plugin.path)])  # the user imported the module themselves
    plugin.marker.unlink()
    assert load_branch(folder, "tiny").representation_dim == 4
    assert not plugin.ran()  # imported once, by the user; loading ran nothing more


def test_an_import_path_encoder_in_an_export_is_not_imported_or_called_unless_trusted(plugin, tmp_path):
    folder = _export(plugin, tmp_path / "export")
    meta_path = folder / "tiny.json"
    meta = json.loads(meta_path.read_text())
    stem = plugin.path.stem
    sys.path.insert(0, str(plugin.path.parent))
    try:
        meta.update(encoder=f"{stem}:pool", imports=[])
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(
            RunDirError, match=rf"needs modules \['{stem}'\] to build encoder '{stem}:pool'; importing runs"
        ):
            load_branch(folder, "tiny")
        assert not plugin.ran() and stem not in sys.modules

        # An already-imported module is no excuse: the name alone chooses what gets called.
        touched = tmp_path / "touched"
        meta.update(encoder="os:system", encoder_kwargs={"command": f"touch {touched}"})
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(RunDirError, match=r"needs modules \['os'\] to build encoder 'os:system'"):
            load_branch(folder, "tiny")
        assert not touched.exists()
    finally:
        sys.path.remove(str(plugin.path.parent))
        sys.modules.pop(stem, None)


def test_a_built_in_encoder_needs_no_trust_even_with_imports_listed(plugin, tmp_path):
    branch = build_branch("tiny", "resnet18", {}, "8-8")
    branch.preprocess = create_modality("image", {"image_size": 16})
    export_branch(branch, tmp_path / "export", "resnet18", {}, imports=[str(plugin.path)])
    assert load_branch(tmp_path / "export", "tiny").representation_dim == 512
    assert not plugin.ran()


def test_a_branch_name_cannot_leave_the_export_folder(plugin, tmp_path):
    _export(plugin, tmp_path / "outside")  # a real export next to the folder asked for
    (tmp_path / "export").mkdir()
    for name in ("../outside/tiny", str(tmp_path / "outside" / "tiny")):
        with pytest.raises(RunDirError, match=r"no exported branch .* exported branches: none"):
            load_branch(tmp_path / "export", name)
    assert not plugin.ran()


def test_embed_needs_trust_imports_for_an_export_of_a_plugin(plugin, tiny_images, tmp_path, capsys):
    folder = _export(plugin, tmp_path / "export")
    args = [
        "embed",
        str(folder),
        "--branch",
        "tiny",
        "--input",
        str(tiny_images / "val"),
        "--out",
        str(tmp_path / "e.npy"),
    ]
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass --trust-imports if you trust this export" in err[0]
    assert not plugin.ran() and not (tmp_path / "e.npy").exists()

    assert main([*args, "--trust-imports"]) == 0
    assert plugin.ran() and (tmp_path / "e.npy").is_file()


def _run_dir(plugin: Plugin, tiny_images: Path, run: Path, encoder: str) -> Path:
    """A run directory whose config.yaml lists the plug-in under imports, with its export."""
    recipe = TINY_RECIPE.replace("root: null", f"root: {tiny_images}").replace(
        "encoder: resnet18", f"encoder: {encoder}"
    )
    recipe = recipe.replace("expander: 64-64", "expander: 8-8").replace("linear_epochs: 5", "linear_epochs: 1")
    run.mkdir()
    (run / "config.yaml").write_text(f"imports: [{plugin.path}]\n" + recipe)
    registry.import_modules([str(plugin.path)])
    branch = build_branch("tiny", encoder, {}, "8-8")
    branch.preprocess = create_modality("image", {"image_size": 16})
    export_branch(branch, run / "export", encoder, {}, imports=[str(plugin.path)])
    plugin.forget()
    return run


def test_eval_imports_a_run_directorys_modules_only_with_trust_imports(plugin, tiny_images, tmp_path, capsys):
    run = _run_dir(plugin, tiny_images, tmp_path / "run", plugin.encoder)
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: {run / 'config.yaml'} needs modules {[str(plugin.path)]} to build encoder {plugin.encoder!r}; "
        "importing "
        "runs their code: pass --trust-imports if you trust this run directory (or import them yourself)"
    ]
    assert not plugin.ran()

    assert main(["eval", str(run), "--trust-imports"]) == 0
    assert plugin.ran() and "tiny/knn_top1" in json.loads((run / "metrics.json").read_text())


def test_eval_of_a_run_of_built_ins_ignores_its_imports(plugin, tiny_images, tmp_path):
    run = _run_dir(plugin, tiny_images, tmp_path / "run", "resnet18")
    assert main(["eval", str(run)]) == 0
    assert not plugin.ran()
