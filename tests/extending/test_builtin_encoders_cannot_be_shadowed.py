"""A user's folder named ``encoders/`` never hides multivic's built-in encoders."""

import subprocess
import sys
from pathlib import Path

import pytest

from multivic.registry import list_encoders

pytestmark = pytest.mark.slow


@pytest.fixture
def folder_with_own_encoders(tmp_path):
    (tmp_path / "encoders").mkdir()
    (tmp_path / "encoders" / "__init__.py").write_text("MINE = True\n")
    (tmp_path / "list_them.py").write_text(
        "import encoders\nassert encoders.MINE\n"  # the user's own package still imports as theirs
        "from multivic import list_encoders\nprint(' '.join(list_encoders()))\n"
    )
    return tmp_path


def test_every_way_of_running_sees_every_builtin(folder_with_own_encoders):
    builtins = set(list_encoders())
    assert {"resnet18", "resnet50", "vit_small", "gru", "bert", "resnet18_1d", "mel_resnet18"} <= builtins
    python = sys.executable
    ways = {
        "console script": [str(Path(python).with_name("multivic")), "encoders"],
        "python -m multivic.cli": [python, "-m", "multivic.cli", "encoders"],
        "a script importing multivic": [python, "list_them.py"],
    }
    for way, cmd in ways.items():
        proc = subprocess.run(cmd, cwd=folder_with_own_encoders, capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0, f"{way}: {proc.stderr[-2000:]}"
        seen = set(proc.stdout.split())
        assert builtins <= seen, f"{way} misses {sorted(builtins - seen)}"
