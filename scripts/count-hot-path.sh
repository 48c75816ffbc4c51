#!/usr/bin/env bash
# Counts the instructions one hot-path call costs, for every contender of
# bench/benches/hot_path.rs, with callgrind: a count does not move with the load
# of a shared machine, as wall time does. Each contender runs in a process
# of its own (`hot_path --count NAME ITERS`), and only the measured loop
# (`hot_path::run`) is counted, so setup and teardown are left out.
#
# Instructions are not time: they miss cache misses and contention (callgrind
# runs threads one at a time), so the 2-thread figures stay with the wall
# clock (BENCHMARKS.md). The refresh-ahead contenders wait ~10 s each for
# their token to fall due.
#
# Usage: scripts/count-hot-path.sh [ITERS [PATTERN]]
#   ITERS: calls per contender (default 1000000); PATTERN: count only the
#   contenders whose name matches this grep pattern (the floor always).
set -euo pipefail
cd "$(dirname "$0")/.."

iters="${1:-1000000}"
pattern="${2:-}"
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }

bin="$(cargo bench -q -p tokenflight-bench --bench hot_path --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\/hot_path-[^"]*\)".*/\1/p' | tail -1)"
[[ -x "$bin" ]] || { echo "no hot_path bench binary" >&2; exit 1; }

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

floor=""
echo "| contender | instructions per call | ÷ floor |"
echo "|---|---:|---:|"
mapfile -t names < <("$bin" --list | { read -r floor_name; echo "$floor_name"; grep -e "${pattern:-.}"; })
for name in "${names[@]}"; do
    valgrind --tool=callgrind --callgrind-out-file="$out/cg" \
        --toggle-collect='hot_path::run*' "$bin" --count "$name" "$iters" \
        </dev/null >/dev/null 2>"$out/log"
    collected="$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out/log")"
    [[ -n "$collected" ]] || { cat "$out/log" >&2; exit 1; }
    per_call="$(awk -v c="$collected" -v n="$iters" 'BEGIN { printf "%.1f", c / n }')"
    floor="${floor:-$per_call}"
    ratio="$(awk -v x="$per_call" -v f="$floor" 'BEGIN { printf "%.2f", x / f }')"
    echo "| $name | $per_call | $ratio |"
done
