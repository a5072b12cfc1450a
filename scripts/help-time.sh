#!/usr/bin/env bash
# Wall time of `python -m lucerag --help`: the working tree (editable install in .venv) against the
# commit REV (laid out as installed, plugin/ -> lucerag/ with connectors/ and models/ inside, in a
# temporary folder), same venv, runs interleaved, one warm-up each; prints each run and the medians.
#   scripts/help-time.sh [REV] [RUNS]        e.g. scripts/help-time.sh a195c64 5
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-a195c64}; runs=${2:-5}; py=.venv/bin/python
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
git archive "$rev" plugin connectors models | tar -x -C "$tmp"
mv "$tmp/plugin" "$tmp/lucerag"; mv "$tmp/connectors" "$tmp/models" "$tmp/lucerag/"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
PYTHONPATH="$tmp" $py -m lucerag --help >/dev/null 2>&1; $py -m lucerag --help >/dev/null 2>&1
before=(); after=()
for _ in $(seq "$runs"); do
  before+=("$(PYTHONPATH="$tmp" ms $py -m lucerag --help)"); after+=("$(ms $py -m lucerag --help)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "before ($rev): ${before[*]} ms; median $(median "${before[@]}") ms"
echo "after (working tree): ${after[*]} ms; median $(median "${after[@]}") ms"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
