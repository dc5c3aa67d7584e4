#!/usr/bin/env bash
# The README's SQL examples run as written and print what the README shows.
#
# Convention (README.md, "Getting started"; keep the two in step):
#  - Every ```sql block is an example.  They run in the README's order, in one
#    psql session (psql -X, default settings: footers and command tags shown),
#    in a fresh database made as scripts/demo.sh makes dltrain_demo: CREATE
#    EXTENSION dltrain, then examples/digits.sql.
#  - A ``` or ```text block that follows a ```sql block with nothing but blank
#    lines between them is that example's output, NOTICEs, WARNINGs and errors
#    included (psql prints them where a pasted example prints them).  An
#    example without one must print no ERROR.
#  - A ```sql block right after the line
#    "<!-- readme-test: skip (REASON) -->" is not run; the reason is required.
#  - The block right after "<!-- readme-test: output of examples/digits.sql -->"
#    is compared with what creating the database printed (psql -f, as
#    scripts/demo.sh runs it).
# Comparison, line by line: trailing blank lines and runs of spaces (and the
# dashes of psql's header rules, whose width follows the values) count as one;
# numbers are equal within one unit of their last printed digit (OpenBLAS
# picks different kernels on different CPUs), digits inside words
# ("digits-v1", a checksum) are text; the number before "rows/s" and a whole
# "Time: ... ms" line match any; a line "..." matches any lines (abridged
# output).  Nothing else is tolerated.
#
#   bash test/sh/readme.sh            run and compare
#   bash test/sh/readme.sh --print    also print every example's output
# The digits data comes from python3-sklearn (scripts/test.sh installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_readme_test
data=/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz
if [ ! -r "$data" ]; then
	echo "FAILED: $data is missing (apt-get install python3-sklearn; scripts/test.sh installs it)"
	exit 1
fi
dir=$(mktemp -d /tmp/dltrain-readme.XXXXXX)
chmod 755 "$dir"
trap 'rm -rf "$dir"; psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

# the database, as scripts/demo.sh makes dltrain_demo
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -X -q -v ON_ERROR_STOP=1 -d $db -c "CREATE EXTENSION dltrain"
if ! psql -X -q -d $db -f examples/digits.sql >"$dir/demo.txt" 2>&1; then
	echo "FAILED: examples/digits.sql:"
	sed 's/^/  /' "$dir/demo.txt"
	exit 1
fi

PGDATABASE=$db /usr/bin/python3 - "$dir" "${1:-}" <<'PY'
import re, subprocess, sys
from decimal import Decimal

workdir, mode = sys.argv[1], sys.argv[2]
SKIP = re.compile(r"^\s*<!-- readme-test: skip \((.+)\) -->\s*$")
DEMO = re.compile(r"^\s*<!-- readme-test: output of examples/digits\.sql -->\s*$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")

# --- the README's blocks, in order: (line, lang, text, marker before it)
lines = open("README.md", encoding="utf-8").read().split("\n")
blocks, i, marker = [], 0, None
while i < len(lines):
    m = FENCE.match(lines[i])
    if not m:
        if lines[i].strip():
            marker = lines[i]
        i += 1
        continue
    indent, lang, start = len(m.group(1)), m.group(2), i
    body = []
    i += 1
    while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
        body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
        i += 1
    if i == len(lines):
        sys.exit("FAILED: README.md:%d: a block that never ends" % (start + 1))
    # the line before the block that is not blank, and whether blank lines only
    # separate this block from the one before
    blocks.append(dict(line=start + 1, lang=lang, text="\n".join(body), marker=marker,
                       follows=(marker is None)))
    marker = None
    i += 1

examples, skipped, problems = [], [], []
for k, b in enumerate(blocks):
    if b["lang"] != "sql":
        continue
    out = None
    if k + 1 < len(blocks) and blocks[k + 1]["lang"] in ("", "text") and blocks[k + 1]["follows"]:
        out = blocks[k + 1]
    if b["marker"] and SKIP.match(b["marker"]):
        skipped.append((b["line"], SKIP.match(b["marker"]).group(1)))
        continue
    if b["marker"] and "readme-test" in b["marker"]:
        problems.append("README.md:%d: a readme-test marker that is not \"skip (REASON)\": %s"
                        % (b["line"], b["marker"].strip()))
        continue
    code = [l for l in b["text"].split("\n") if l.strip() and not l.strip().startswith("--")]
    if not code or not (code[-1].rstrip().endswith(";") or code[-1].lstrip().startswith("\\")):
        problems.append("README.md:%d: a ```sql example must end its last statement with \";\""
                        % b["line"])
        continue
    examples.append(dict(line=b["line"], sql=b["text"], expected=out))
demo_blocks = [b for b in blocks if b["marker"] and DEMO.match(b["marker"])]

# --- run them in one session, each after a line that marks where it begins
script = []
for n, e in enumerate(examples):
    script.append("\\echo '<<readme-example %d>>'" % n)
    script.append(e["sql"])
script.append("\\echo '<<readme-example end>>'")
run = subprocess.run(["psql", "-X"], input="\n".join(script) + "\n", text=True,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
parts = re.split(r"^<<readme-example (\d+|end)>>\n", run.stdout, flags=re.M)
before = parts[0]
got = {}
for j in range(1, len(parts) - 1, 2):
    if parts[j] != "end":
        got[int(parts[j])] = parts[j + 1]

# --- comparison
NUMBER = re.compile(r"(?<![\w.-])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w.])")
RATE = re.compile(r"(?<![\w.-])\d+(?:\.\d+)?(?= ?rows/s)")

def norm(line):
    line = re.sub(r"-{2,}", "-", line.rstrip())
    return re.sub(r"\s+", " ", line)

def tokens(line):
    """text and numbers, in order; a rate is the token RATE"""
    line = RATE.sub("RATE", norm(line))
    out, pos = [], 0
    for m in NUMBER.finditer(line):
        out.append(line[pos:m.start()])
        out.append(Decimal(m.group()))
        pos = m.end()
    out.append(line[pos:])
    return out

def line_matches(e, g):
    if e.strip().startswith("Time: ") and e.strip().endswith(" ms"):
        return bool(re.match(r"^Time: \d+(\.\d+)? ms", g.strip()))
    es, gs = tokens(e), tokens(g)
    if len(es) != len(gs):
        return False
    for a, b in zip(es, gs):
        if isinstance(a, Decimal) and isinstance(b, Decimal):
            if abs(a - b) > Decimal(1).scaleb(a.as_tuple().exponent):
                return False
        elif a != b:
            return False
    return True

def trim(text):
    ls = text.split("\n")
    while ls and not ls[-1].strip():
        ls.pop()
    while ls and not ls[0].strip():
        ls.pop(0)
    return ls

def matches(exp, got):
    """exp's lines against got's; a line "..." matches any lines"""
    memo = {}
    def m(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(exp):
            r = j == len(got)
        elif exp[i].strip() == "...":
            r = any(m(i + 1, k) for k in range(j, len(got) + 1))
        else:
            r = j < len(got) and line_matches(exp[i], got[j]) and m(i + 1, j + 1)
        memo[(i, j)] = r
        return r
    return m(0, 0)

def show(title, ls):
    print("  " + title)
    for l in ls:
        print("    | " + l)

failed = 0
if before.strip():
    problems.append("psql printed before the first example: " + before.strip())
for n, e in enumerate(examples):
    out = trim(got.get(n, "<<no output: the session ended before this example>>"))
    where = "README.md:%d" % e["line"]
    if mode == "--print":
        show("%s printed:" % where, out)
    if e["expected"] is None:
        ok = not any(l.startswith("ERROR:") for l in out)
        why = "it raised an error"
    else:
        ok = matches(trim(e["expected"]["text"]), out)
        why = "its output differs from the README's (README.md:%d)" % e["expected"]["line"]
    if not ok:
        failed += 1
        print("FAILED: the example at %s: %s" % (where, why))
        show("SQL:", e["sql"].split("\n"))
        if e["expected"] is not None:
            show("README shows:", trim(e["expected"]["text"]))
        show("psql printed:", out)

demo = trim(open(workdir + "/demo.txt", encoding="utf-8").read())
for b in demo_blocks:
    if not matches(trim(b["text"]), demo):
        failed += 1
        print("FAILED: the output of examples/digits.sql at README.md:%d differs:" % b["line"])
        show("README shows:", trim(b["text"]))
        show("psql -f examples/digits.sql printed:", demo)

for p in problems:
    failed += 1
    print("FAILED: " + p)
for line, reason in skipped:
    print("skipped: the example at README.md:%d (%s)" % (line, reason))
print("readme: %d examples ran (and %d demo output blocks compared), %d skipped, %d failed"
      % (len(examples), len(demo_blocks), len(skipped), failed))
if not examples:
    print("FAILED: no ```sql example found in README.md")
    failed += 1
sys.exit(1 if failed else 0)
PY
