#!/usr/bin/env bash
# The layering of src/ (docs/architecture.md), checked from the sources:
#   - a file includes dltrain headers of its own layer or below only (no
#     upward include, and so no upward call: C needs the declaration);
#   - no dltrain header is included by every glue file;
#   - src/kernels includes no PostgreSQL header (only system headers and
#     its own);
#   - no glue file is longer than 900 lines;
#   - every glue file is in the layer map below (a new file gets a layer).
# Exits 1 and names every violation.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# layer of each glue file (by its name without .c/.h)
declare -A L=(
	# 1: services every layer may use
	[version]=1 [budget]=1 [resource]=1 [interrupt]=1 [options]=1 [jsonutil]=1
	[feature_array]=1 [labels]=1 [model]=1 [model_check]=1 [progress]=1 [relation]=1
	[merge]=1 [blas]=1 [newrows]=1
	# 2: one model: trainer, scorer
	[trainer]=2 [score]=2
	# 3: pipeline: row sources, canonical order, statistics, mini-batches
	[cache]=3 [rows]=3 [order]=3 [stats]=3 [minibatch]=3 [rowsource]=3
	[source_cache]=3 [source_table]=3 [source_test]=3
	# 4: engine
	[engine]=4 [engine_int]=4 [continuing]=4 [materialize]=4
	# 5: SQL entry points, hooks
	[dltrain]=5 [train_agg]=5 [fit]=5 [retrain]=5 [grid]=5 [predict]=5 [predict_batch]=5
	[evaluate]=5 [export]=5 [planner]=5 [planner_hook]=5 [block_shuffle]=5 [testing]=5 [checkpoint_worker]=5
)
bad=0
fail() { echo "layering: $*"; bad=1; }

nglue=0
declare -A users=()
for f in src/*.c src/*.h; do
	base=$(basename "$f"); name=${base%.*}
	[ -n "${L[$name]:-}" ] || { fail "$f has no layer (add it to test/sh/layering.sh and docs/architecture.md)"; continue; }
	[ "${f##*.}" = c ] && nglue=$((nglue + 1))
	lines=$(wc -l < "$f")
	[ "$lines" -le 900 ] || fail "$f has $lines lines (at most 900)"
	while read -r inc; do
		h=${inc%.h}
		[ -n "${L[$h]:-}" ] || continue         # PostgreSQL's or the kernels'
		[ "$h" = "$name" ] && continue
		if [ "${L[$h]}" -gt "${L[$name]}" ]; then
			fail "$f (layer ${L[$name]}) includes $inc (layer ${L[$h]}): an upward arrow"
		fi
		[ "${f##*.}" = c ] && users[$h]=$(( ${users[$h]:-0} + 1 ))
	done < <(sed -n 's/^#include "\([a-z_]*\.h\)".*/\1/p' "$f")
done
for h in "${!users[@]}"; do
	[ "${users[$h]}" -ge "$nglue" ] && fail "$h.h is included by every one of the $nglue glue files"
done

for f in src/kernels/*.c src/kernels/*.h; do
	while read -r inc; do
		case "$inc" in
			dlk*.h) ;;
			*) fail "$f includes \"$inc\": the kernels include only their own headers" ;;
		esac
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
	grep -nE '^#include <(postgres|fmgr|utils/|access/|catalog/|nodes/|executor/|storage/)' "$f" &&
		fail "$f includes a PostgreSQL header"
done

if [ $bad = 0 ]; then
	echo "layering: ok ($nglue glue files in 5 layers; kernels free of PostgreSQL; none over 900 lines)"
fi
exit $bad
