"""Static checks of the package in CI: ruff and mypy report nothing (configured in pyproject.toml).

mypy reads the import package ``lucerag``, whose source lives in three folders (``plugin/``,
``connectors/``, ``models/``, mapped by setuptools' ``package-dir``): the test lays the package out
as it is installed, with symbolic links in a temporary folder, and checks it there.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ["plugin", "connectors", "models"]


def _tool(name: str) -> list[str]:
    pytest.importorskip(name, reason=f"{name} is in the test extra: pip install -e '.[test]'")
    return [sys.executable, "-m", name]


def test_ruff_finds_nothing():
    out = subprocess.run([*_tool("ruff"), "check", *PACKAGE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing(tmp_path):
    tree = tmp_path / "lucerag"
    tree.mkdir()
    for entry in (ROOT / "plugin").iterdir():
        if entry.name not in ("__pycache__", "java"):
            (tree / entry.name).symlink_to(entry)
    (tree / "connectors").symlink_to(ROOT / "connectors")
    (tree / "models").symlink_to(ROOT / "models")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    out = subprocess.run([*_tool("mypy"), "-p", "lucerag", "--cache-dir", str(ROOT / ".mypy_cache")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Success: no issues found" in out.stdout, out.stdout + out.stderr


def test_the_checks_can_fail(tmp_path):
    """A file with an unused import and a type error is reported by both tools."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f() -> int:\n    return 'x'\n")
    ruff = subprocess.run([*_tool("ruff"), "check", "--select", "F", str(bad)], capture_output=True, text=True)
    mypy = subprocess.run([*_tool("mypy"), "--no-incremental", str(bad)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert ruff.returncode == 1 and "F401" in ruff.stdout
    assert mypy.returncode == 1 and "Incompatible return value type" in mypy.stdout
