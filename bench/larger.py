#!/usr/bin/env python3
"""Data larger than memory: dltrain's in-memory cache, spilled cache and fit().

    /usr/bin/python3 bench/larger.py [--table bench_small] [--epochs 2] [--fraction 0.1]

Needs the tables of bench/run.sh (bench/datagen.py) and the throwaway cluster
(eval "$(scripts/cluster.sh env)").  On one table, in one invocation:

  * the in-memory row cache (dltrain.cache_mem large enough);
  * the spilled row cache with dltrain.cache_mem at a tenth of the data
    (--fraction): the backend's private memory is sampled from
    /proc/<pid>/status (RssAnon: anonymous memory, i.e. not shared buffers,
    which VmHWM would count) every 20 ms while it trains;
  * dltrain.fit() streaming (block-shuffled reads, a 65,536-row buffer);
  * the block-shuffled read against a plain sequential scan of the table
    (count(*) and sum(cardinality(x)), medians of 5, warm).

Per-epoch seconds come from the NOTICE lines (dltrain.log_epochs) and from
fit()'s result rows; accuracy from dltrain.evaluate on <table>_test.  Same
model for all: 64-128-64-10 (or --hidden), batch 128, Adam, lr 1e-3, seed 1.
"""
import argparse
import json
import re
import statistics
import threading
import time

import psycopg2


def connect(db):
    conn = psycopg2.connect(dbname=db)
    conn.autocommit = True
    return conn


def rss_sampler(pid, stop, out):
    peak = 0
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.02)
    out.append(peak)


def epoch_seconds(notices):
    secs = []
    for n in notices:
        m = re.search(r"epoch (\d+)/\d+: loss ([0-9.]+).*?([0-9]+) rows/s", n)
        if m:
            secs.append(m)
    return secs


def rss_now(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


def train(conn, table, options, cache_mem, test_table, rows):
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    baseline = rss_now(pid)
    cur.execute("SET dltrain.log_epochs = on")
    cur.execute("SET dltrain.cache_mem = %s", (cache_mem,))
    del conn.notices[:]
    stop, peak = threading.Event(), []
    sampler = threading.Thread(target=rss_sampler, args=(pid, stop, peak))
    sampler.start()
    t0 = time.perf_counter()
    cur.execute(f"CREATE TEMP TABLE m AS SELECT dltrain.train_mlp(x, y, %s) AS m FROM {table}",
                (json.dumps(options),))
    total = time.perf_counter() - t0
    stop.set()
    sampler.join()
    per_epoch = [rows / int(m.group(3)) for m in epoch_seconds(conn.notices)]
    cur.execute("SELECT dltrain.describe(m)->'rows_used' FROM m")
    used = cur.fetchone()[0]
    cur.execute(f"SELECT (dltrain.evaluate(m, t.x, t.y)->>'accuracy')::float8 FROM m, {test_table} t")
    acc = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM pg_ls_tmpdir()")
    tmp = cur.fetchone()[0]
    cur.execute("DROP TABLE m")
    cur.execute("RESET dltrain.cache_mem")
    return {"seconds": total, "per_epoch": per_epoch, "rows_used": used, "accuracy": acc,
            "rss_anon_peak": peak[0], "rss_anon_before": baseline, "temp_files_after": tmp}


def fit(conn, table, options, test_table):
    cur = conn.cursor()
    cur.execute("SET client_min_messages = warning")
    t0 = time.perf_counter()
    cur.execute(f"SELECT epoch, seconds, rows, model FROM dltrain.fit(%s, '{{x}}', 'y', %s)",
                (table, json.dumps(options)))
    res = cur.fetchall()
    total = time.perf_counter() - t0
    model = [r[3] for r in res if r[3] is not None][0]
    cur.execute(f"SELECT (dltrain.evaluate(%s::dltrain.model, t.x, t.y)->>'accuracy')::float8 FROM {test_table} t",
                (model,))
    acc = cur.fetchone()[0]
    cur.execute("RESET client_min_messages")
    return {"seconds": total, "per_epoch": [r[1] for r in res], "rows": res[-1][2], "accuracy": acc}


def scans(conn, table, ppr, reps=5):
    cur = conn.cursor()
    out = {}
    for name, q in (("seq count", f"SELECT count(*) FROM {table}"),
                     ("block_shuffle count", f"SELECT count(*) FROM {table} TABLESAMPLE dltrain.block_shuffle({ppr}) REPEATABLE (1)"),
                     ("seq sum(cardinality(x))", f"SELECT sum(cardinality(x)) FROM {table}"),
                     ("block_shuffle sum(cardinality(x))",
                      f"SELECT sum(cardinality(x)) FROM {table} TABLESAMPLE dltrain.block_shuffle({ppr}) REPEATABLE (1)")):
        cur.execute(q)
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            cur.execute(q)
            cur.fetchall()
            ts.append(time.perf_counter() - t0)
        out[name] = statistics.median(ts)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbname", default="dltrain_bench")
    ap.add_argument("--table", default="bench_small")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--hidden", default="128,64")
    ap.add_argument("--pages-per-range", type=int, default=32)
    args = ap.parse_args()

    conn = connect(args.dbname)
    cur = conn.cursor()
    cur.execute(f"SELECT count(*), max(cardinality(x)) FROM {args.table}")
    rows, dim = cur.fetchone()
    data_bytes = rows * (dim * 4 + 8)
    budget = int(data_bytes * args.fraction)
    opts = {"hidden": [int(h) for h in args.hidden.split(",")], "epochs": args.epochs,
            "batch_size": 128, "lr": 0.001, "seed": 1}
    test = args.table + "_test"
    print(f"table {args.table}: {rows} rows x {dim} features, cache {data_bytes / 2**20:.0f} MiB; "
          f"spill budget {budget / 2**20:.1f} MiB ({args.fraction:.0%})", flush=True)

    mem = train(conn, args.table, opts, "4GB", test, rows)
    spill = train(conn, args.table, opts, f"{budget // 1024}kB", test, rows)
    streamed = fit(conn, args.table, dict(opts, pages_per_range=args.pages_per_range), test)
    sc = scans(conn, args.table, args.pages_per_range)

    med = lambda xs: statistics.median(xs) if xs else float("nan")
    print()
    print(f"| | in-memory cache | spilled cache ({args.fraction:.0%}) | fit() streaming |")
    print("|---|---:|---:|---:|")
    print(f"| per-epoch s (median) | {med(mem['per_epoch']):.2f} | {med(spill['per_epoch']):.2f} | {med(streamed['per_epoch']):.2f} |")
    print(f"| table to model s | {mem['seconds']:.2f} | {spill['seconds']:.2f} | {streamed['seconds']:.2f} |")
    print(f"| rows trained | {mem['rows_used']} | {spill['rows_used']} | {streamed['rows']} |")
    print(f"| held-out accuracy | {mem['accuracy']:.4f} | {spill['accuracy']:.4f} | {streamed['accuracy']:.4f} |")
    print(f"| backend RssAnon peak MiB | {mem['rss_anon_peak'] / 2**20:.0f} | {spill['rss_anon_peak'] / 2**20:.0f} | |")
    print(f"| temp files left | {mem['temp_files_after']} | {spill['temp_files_after']} | |")
    print()
    grown = spill['rss_anon_peak'] - spill['rss_anon_before']
    print(f"spill budget {budget / 2**20:.1f} MiB: RssAnon {spill['rss_anon_before'] / 2**20:.1f} MiB before, "
          f"peak {spill['rss_anon_peak'] / 2**20:.1f} MiB: training added {grown / 2**20:.1f} MiB "
          f"({grown / budget:.2f}x the budget; model buffers and batch included)")
    print()
    print("| scan (warm, median of 5) | s | block_shuffle / sequential |")
    print("|---|---:|---:|")
    for k in ("count", "sum(cardinality(x))"):
        seq, blk = sc["seq " + k], sc["block_shuffle " + k]
        print(f"| {k}: sequential | {seq:.3f} | |")
        print(f"| {k}: block_shuffle({args.pages_per_range}) | {blk:.3f} | {blk / seq:.2f}x |")


if __name__ == "__main__":
    main()
