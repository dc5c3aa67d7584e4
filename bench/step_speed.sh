#!/usr/bin/env bash
# Single-model and fused training speed, before and after: builds
# bench/step_speed.c against the kernels of git revision REV and against
# the working tree's, runs them interleaved REPEATS times (default
# 7) and prints the median ms per epoch of each case and the ratio.
#
#   bash bench/step_speed.sh REV [REPEATS] [--scale S]
#
# Both builds use the extension's flags for kernel objects (-O3
# -fno-math-errno) and OpenBLAS single-threaded, as the extension runs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rev=${1:?usage: step_speed.sh REV [REPEATS] [--scale S]}
reps=${2:-7}
shift $(( $# >= 2 ? 2 : 1 ))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/before"
git archive "$rev" src/kernels | tar -x -C "$tmp/before"
flags=(-O3 -fno-math-errno -std=gnu11 -Wall)
cc "${flags[@]}" -I"$tmp/before/src/kernels" -o "$tmp/step_before" bench/step_speed.c "$tmp"/before/src/kernels/*.c -ldl -lm -lpthread
cc "${flags[@]}" -Isrc/kernels -o "$tmp/step_after" bench/step_speed.c src/kernels/*.c -ldl -lm -lpthread
for ((i = 0; i < reps; i++)); do
	"$tmp/step_before" "$@" | sed 's/^/before /' >> "$tmp/out"
	"$tmp/step_after" "$@" | sed 's/^/after /' >> "$tmp/out"
done
python3 - "$tmp/out" "$rev" "$reps" <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    w, case, ms = line.split()
    d[(w, case)].append(float(ms))
cases = []
for w, c in d:
    if c not in cases:
        cases.append(c)
print(f"ms per epoch, median of {sys.argv[3]} interleaved repeats (before = {sys.argv[2]})")
print(f"{'case':40s} {'before':>9s} {'after':>9s} {'after/before':>12s}  (before min-max | after min-max)")
for c in cases:
    b, a = d[('before', c)], d[('after', c)]
    mb, ma = statistics.median(b), statistics.median(a)
    print(f"{c:40s} {mb:9.1f} {ma:9.1f} {ma/mb:12.3f}  ({min(b):.1f}-{max(b):.1f} | {min(a):.1f}-{max(a):.1f})")
PY
