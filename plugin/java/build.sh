#!/usr/bin/env bash
# Rebuild plugin/data/lucerag-bridge.jar from lucerag/Bridge.java (needs a JDK >= 17 with javac).
# The jar is committed so that users need only a Java runtime; it records the source's hash,
# and a test checks that hash against the source.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fatjar=${1:-$(python -c 'import lucerag.jvm as j; print(j.anserini_jar())')}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
javac --release 17 -cp "$fatjar" -d "$work" "$here"/lucerag/*.java
cat "$here"/lucerag/*.java | sha256sum | cut -d" " -f1 > "$work/lucerag/sources.sha256"
jar --create --date=2026-01-01T00:00:00Z --file "$here/../data/lucerag-bridge.jar" -C "$work" lucerag
echo "built $here/../data/lucerag-bridge.jar"
