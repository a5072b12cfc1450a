#!/usr/bin/env bash
# Wall time of `python -m lucerag [COMMAND] --help` for the top level and every command group: the
# working tree (editable install in the venv) against the commit REV (laid out as installed,
# plugin/ -> lucerag/ with connectors/ and models/ inside, in a temporary folder), same venv, runs
# interleaved, one warm-up each; prints the median of each and the load average.
#   scripts/help-time.sh [REV] [RUNS] [VENV]        e.g. scripts/help-time.sh 2560962 5 .venv
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:-2560962}; runs=${2:-5}; py=${3:-.venv}/bin/python
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
git archive "$rev" plugin connectors models | tar -x -C "$tmp"
mv "$tmp/plugin" "$tmp/lucerag"; mv "$tmp/connectors" "$tmp/models" "$tmp/lucerag/"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "typer $($py -c 'import importlib.metadata as m; print(m.version("typer"))'); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for cmd in "" index search eval calibrate serve demo "models export" "bench peers"; do
  # shellcheck disable=SC2086
  PYTHONPATH="$tmp" $py -m lucerag $cmd --help >/dev/null 2>&1 || true; $py -m lucerag $cmd --help >/dev/null 2>&1
  before=(); after=()
  for _ in $(seq "$runs"); do
    # shellcheck disable=SC2086
    before+=("$(PYTHONPATH="$tmp" ms $py -m lucerag $cmd --help)"); after+=("$(ms $py -m lucerag $cmd --help)")
  done
  printf 'lucerag %-14s --help  before (%s) %5s ms   after %5s ms\n' "$cmd" "$rev" "$(median "${before[@]}")" "$(median "${after[@]}")"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
