"""Both an editable install and a built wheel give the one namespace ``lucerag``."""

import subprocess
import sys
import zipfile

from conftest import ROOT


def test_wheel_holds_all_three_packages_and_the_bridge(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("lucerag-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for expected in ("lucerag/__init__.py", "lucerag/search/retriever.py", "lucerag/connectors/__init__.py",
                     "lucerag/models/__init__.py", "lucerag/data/lucerag-bridge.jar", "lucerag/py.typed",
                     "lucerag/data/demo/fusion.md", "lucerag/data/demo-queries.txt"):
        assert expected in names, expected
    assert any(n.endswith("entry_points.txt") for n in names)
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = ("import lucerag, lucerag.connectors, lucerag.models, lucerag.lucene.jvm as j;"
            "assert lucerag.__file__.startswith(%r), lucerag.__file__;"
            "assert j.bridge_jar().is_file(); print('ok')" % str(unpacked))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_missing_optional_module_names_the_extra_that_installs_it():
    """`lucerag serve` without the server extra said only "No module named 'prometheus_client'"."""
    import tomllib

    from lucerag.cli.app import EXTRA_OF, _install_hint

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRA_OF.values()) <= set(extras)  # every hint names a real extra
    exc = ModuleNotFoundError("No module named 'prometheus_client'", name="prometheus_client")
    assert _install_hint(exc) == " (install it with: pip install 'lucerag[server]')"
    assert _install_hint(ModuleNotFoundError("x", name="numpy_nope")) == ""
    assert _install_hint(ValueError("prometheus_client")) == ""
