#!/usr/bin/env python3
"""Deterministic benchmark tables for dltrain (bench/run.sh calls this).

Tables (in the database named by --dbname, default dltrain_bench):

  bench_small       1,000,000 rows, x real[64],  y int (10 classes)
  bench_small_test     50,000 rows, same distribution, other seed
  bench_wide          100,000 rows, x real[784], y int (10 classes)
  bench_wide_test      10,000 rows

Features are i.i.d. standard normal float32 values; the label of a row is the
argmax of a fixed random "teacher" MLP (D-32-10, tanh hidden layer) applied to
its features.  Every random number comes from numpy's PCG64 generator with a
fixed seed, so the tables are identical on every machine.  Rows are written
with binary COPY (the numpy structured array below is exactly the PostgreSQL
binary COPY tuple layout).  A table is (re)created only when it is missing or
its COMMENT does not match the current specification.
"""
import argparse
import io
import sys
import time

import numpy as np
import psycopg2

SPEC_VERSION = 1
TEACHER_HIDDEN = 32
N_CLASSES = 10
CHUNK = 100_000
FLOAT4OID = 700

# name: (rows, dim, feature seed); the teacher seed depends only on dim
TABLES = {
    "bench_small": (1_000_000, 64, 101),
    "bench_small_test": (50_000, 64, 102),
    "bench_wide": (100_000, 784, 201),
    "bench_wide_test": (10_000, 784, 202),
}
TEACHER_SEED = {64: 11, 784: 12}

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def teacher(dim):
    rng = np.random.default_rng(TEACHER_SEED[dim])
    w1 = rng.standard_normal((dim, TEACHER_HIDDEN)) / np.sqrt(dim)
    b1 = rng.standard_normal(TEACHER_HIDDEN) * 0.1
    w2 = rng.standard_normal((TEACHER_HIDDEN, N_CLASSES)) * 2.0 / np.sqrt(TEACHER_HIDDEN)
    b2 = rng.standard_normal(N_CLASSES) * 0.1
    return w1, b1, w2, b2


def labels(x, t):
    w1, b1, w2, b2 = t
    h = np.tanh(x.astype(np.float64) @ w1 + b1)
    return np.argmax(h @ w2 + b2, axis=1).astype(np.int32)


def tuple_dtype(dim):
    """Binary COPY tuple of (id int4, x float4[dim], y int4), big-endian, packed."""
    return np.dtype([
        ("nfields", ">i2"),
        ("id_len", ">i4"), ("id", ">i4"),
        ("x_len", ">i4"),
        ("ndim", ">i4"), ("flags", ">i4"), ("elemtype", ">u4"),
        ("dim", ">i4"), ("lbound", ">i4"),
        ("x", [("len", ">i4"), ("val", ">f4")], (dim,)),
        ("y_len", ">i4"), ("y", ">i4"),
    ])


def copy_payload(first_id, x, y):
    n, dim = x.shape
    rec = np.empty(n, dtype=tuple_dtype(dim))
    rec["nfields"] = 3
    rec["id_len"] = 4
    rec["id"] = np.arange(first_id, first_id + n, dtype=np.int64)
    rec["x_len"] = 20 + 8 * dim
    rec["ndim"] = 1
    rec["flags"] = 0
    rec["elemtype"] = FLOAT4OID
    rec["dim"] = dim
    rec["lbound"] = 1
    rec["x"]["len"] = 4
    rec["x"]["val"] = x
    rec["y_len"] = 4
    rec["y"] = y
    buf = io.BytesIO()
    buf.write(COPY_SIGNATURE)
    buf.write(np.array([0, 0], dtype=">i4").tobytes())  # flags, header extension length
    buf.write(rec.tobytes())
    buf.write(np.array([-1], dtype=">i2").tobytes())
    buf.seek(0)
    return buf


def spec_string(name):
    rows, dim, seed = TABLES[name]
    return (f"dltrain bench v{SPEC_VERSION}: rows={rows} dim={dim} seed={seed} "
            f"teacher={dim}-{TEACHER_HIDDEN}-{N_CLASSES} tanh seed={TEACHER_SEED[dim]}")


def current_spec(cur, name):
    cur.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (name,))
    row = cur.fetchone()
    return row[0] if row else None


def build(conn, name, quiet=False):
    rows, dim, seed = TABLES[name]
    t = teacher(dim)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    counts = np.zeros(N_CLASSES, dtype=np.int64)
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {name}")
        cur.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, x real[] NOT NULL, y int NOT NULL)")
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            x = rng.standard_normal((n, dim), dtype=np.float32)
            y = labels(x, t)
            counts += np.bincount(y, minlength=N_CLASSES)
            cur.copy_expert(f"COPY {name} (id, x, y) FROM STDIN (FORMAT binary)",
                            copy_payload(start + 1, x, y))
        cur.execute(f"COMMENT ON TABLE {name} IS %s", (spec_string(name),))
    conn.commit()
    old = conn.autocommit
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"VACUUM (FREEZE, ANALYZE) {name}")
    conn.autocommit = old
    if not quiet:
        frac = ", ".join(f"{c / rows:.3f}" for c in counts)
        print(f"  {name}: {rows} rows x {dim} features in {time.perf_counter() - t0:.1f} s;"
              f" class fractions {frac}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbname", default="dltrain_bench")
    ap.add_argument("--force", action="store_true", help="rebuild every table")
    args = ap.parse_args()
    conn = psycopg2.connect(dbname=args.dbname)
    with conn.cursor() as cur:
        for name in TABLES:
            if args.force or current_spec(cur, name) != spec_string(name):
                conn.commit()
                print(f"creating {name} ...", flush=True)
                build(conn, name)
            else:
                print(f"  {name}: present ({spec_string(name)})")
    conn.commit()
    conn.close()


if __name__ == "__main__":
    sys.exit(main())
