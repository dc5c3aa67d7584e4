#!/usr/bin/env bash
# The README's Python examples run as written: the ```python blocks between
# the markers "<!-- python example: begin" and "<!-- python example: end -->"
# (section "From Python"), joined in order into one program, run with Debian's
# /usr/bin/python3 (python3-psycopg2 and python3-matplotlib, installed by
# scripts/test.sh) against a fresh database of the throwaway cluster, in an
# empty folder.  It must exit 0, write history.png (a PNG image) and print
# what the ```text blocks between the markers show: words equal, numbers
# within one unit of their last printed digit (OpenBLAS picks different
# kernels on different CPUs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_python_test
dir=$(mktemp -d /tmp/dltrain-python.XXXXXX)
trap 'rm -rf "$dir"; psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

# extract LANG: the ```LANG blocks between the markers, in order
extract() {
	awk -v lang="$1" '
		/^<!-- python example: begin/ { inside = 1; next }
		/^<!-- python example: end -->/ { inside = 0; next }
		inside && !code && /^```/ { code = 1; mine = ($0 == "```" lang); if (mine) blocks++; next }
		inside && code && /^```$/ { code = 0; next }
		inside && code && mine { print }
		END { if (inside || code) exit 1; if (lang == "python") print "# " blocks " blocks" }
	' README.md
}
extract python >"$dir/example.py" && extract text >"$dir/expected.txt" ||
	{ echo "FAILED: README: a block or the python example's end marker is missing"; exit 1; }
blocks=$(sed -n 's/^# \([0-9]*\) blocks$/\1/p' "$dir/example.py")
if [ "${blocks:-0}" -lt 2 ] || [ ! -s "$dir/expected.txt" ]; then
	echo "FAILED: README: expected python blocks (with the plot) and their output between the markers, found ${blocks:-0} python blocks"
	exit 1
fi

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d $db -c "CREATE EXTENSION dltrain"

fail=0
if (cd "$dir" && PGDATABASE=$db MPLCONFIGDIR="$dir/mpl" timeout 60 /usr/bin/python3 example.py >"$dir/out.txt" 2>&1); then
	echo "ok: the README's $blocks python blocks ran"
else
	echo "FAILED: the README's python example (exit status $?):"
	sed 's/^/  /' "$dir/out.txt"
	fail=1
fi
if [ "$(head -c 8 "$dir/history.png" 2>/dev/null | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; then
	echo "ok: it wrote history.png ($(stat -c %s "$dir/history.png") bytes)"
else
	echo "FAILED: it wrote no PNG image history.png"
	fail=1
fi
if /usr/bin/python3 - "$dir/expected.txt" "$dir/out.txt" <<'PY'; then
import re, sys
from decimal import Decimal

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

def split(line):
    """words and numbers, in order"""
    out, pos = [], 0
    for m in NUMBER.finditer(line):
        out.append(line[pos:m.start()])
        out.append(Decimal(m.group()))
        pos = m.end()
    out.append(line[pos:])
    return out

expected = open(sys.argv[1]).read().splitlines()
got = open(sys.argv[2]).read().splitlines()
ok = len(expected) == len(got)
for e, g in zip(expected, got):
    es, gs = split(e), split(g)
    if len(es) != len(gs):
        ok = False
        continue
    for a, b in zip(es, gs):
        if isinstance(a, Decimal) and isinstance(b, Decimal):
            # within one unit of the README's last printed digit
            ok &= abs(a - b) <= Decimal(1).scaleb(a.as_tuple().exponent)
        else:
            ok &= a == b
if not ok:
    print("README shows:", *expected, "printed:", *got, sep="\n  ")
sys.exit(0 if ok else 1)
PY
	echo "ok: it printed what the README shows"
else
	echo "FAILED: its output differs from the README's"
	fail=1
fi
[ $fail = 0 ] && echo "python examples: the README's run as written"
exit $fail
