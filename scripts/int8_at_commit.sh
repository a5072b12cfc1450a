#!/usr/bin/env bash
# Quantise the default model with the int8 recipe of another commit, for before/after benchmarks in one run:
#   scripts/int8_at_commit.sh COMMIT OUT_DIR      (then: lucerag bench encoder --baseline-int8 OUT_DIR)
# The commit's models/ package is unpacked as `lucerag_models_<commit>` into a temp folder and its
# quantize_model runs on this checkout's fp32 export (the fp32 export is the same in recipes 4 and 5).
set -euo pipefail
commit=${1:?usage: $0 COMMIT OUT_DIR}
out=${2:?usage: $0 COMMIT OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pkg=lucerag_models_$(git -C "$root" rev-parse --short "$commit")
git -C "$root" archive "$commit" models | tar -x -C "$tmp"
mv "$tmp/models" "$tmp/$pkg"
PYTHONPATH="$tmp" "$py" - "$pkg" "$out" <<'PY'
import importlib, sys
from lucerag.models.store import ensure_default_model
pkg, out = sys.argv[1], sys.argv[2]
export = importlib.import_module(f"{pkg}.export")
print(export.quantize_model(ensure_default_model(), out, overwrite=True))
PY
