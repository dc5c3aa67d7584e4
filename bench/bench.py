#!/usr/bin/env python3
"""dltrain against PyTorch (and scikit-learn) on the CPU, in one invocation.

Run it through bench/run.sh, which installs the dependencies, starts the
throwaway cluster, creates the tables (bench/datagen.py) and compiles
bench/sgemm_rate.c.  Directly:

    /usr/bin/python3 bench/bench.py [--quick] [--repeats N] [--epochs E] ...

Configurations (batch 128, Adam lr 1e-3, relu, 5 epochs, shuffled, seed 1,
features standardized with the training rows' mean and population std;
dltrain with "init": "pytorch", the initialization nn.Linear uses, unless
--init says otherwise):

  small     bench_small  (1,000,000 x 64)   64-128-64-10    1 thread
  wide      bench_wide   (100,000 x 784)   784-256-128-10   1 thread
  wide_2t   bench_wide                     784-256-128-10   2 threads

Every repeat runs, per configuration, one dltrain training and one PyTorch
training back to back (the order alternates between repeats), then, on the
small configuration, scikit-learn's MLPClassifier on the rows PyTorch
exported; then the scan floor and the cache build of each table, and
OpenBLAS's sgemm rate for each configuration's GEMM shapes.  Figures are
medians over repeats (per-epoch figures: over every epoch of every repeat);
every ratio is computed from figures measured in this invocation.

dltrain:  the query SELECT dltrain.train_mlp(x, y, <options>) FROM <table>,
          timed end to end in the client (table -> model); per-epoch seconds
          from its NOTICE lines (dltrain.log_epochs = on) as rows / (rows/s);
          final loss from dltrain.describe(); held-out accuracy with
          dltrain.predict over the test table (not timed).
PyTorch:  COPY (SELECT x, y FROM <table>) TO STDOUT (FORMAT binary) through
          psycopg2's copy_expert into memory, parsed with numpy (the rows have
          a fixed layout, so the whole buffer is one strided structured array;
          the layout is checked field by field), standardized, then
          nn.Sequential + torch.optim.Adam + F.cross_entropy, shuffled with
          torch.randperm once per epoch, batches gathered by index.
          torch.set_num_threads(T) and openblas_set_num_threads(T) on the
          OpenBLAS that torch links (Debian's torch calls OpenBLAS's sgemm).
"""
import argparse
import ctypes
import datetime
import io
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import warnings

# On this 2-core machine libgomp's default spin-waiting (torch's intra-op
# OpenMP threads) fights OpenBLAS's own threads when both are at 2 threads and
# made PyTorch slower at 2 threads than at 1 in development; passive waiting
# is the better setting for PyTorch.  Has to be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))

FLOAT4OID = 700
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
NOTICE_RE = re.compile(r"epoch (\d+)/(\d+): loss ([-+0-9.eEinfa]+), ([0-9.]+) rows/s")


# ---------------------------------------------------------------- helpers

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def flops_per_row(dims):
    """2*sum(in*out) forward + 2*sum(in*out) weight grads
    + 2*sum over layers but the first (in*out) input grads."""
    prods = [a * b for a, b in zip(dims[:-1], dims[1:])]
    return 2 * sum(prods) + 2 * sum(prods) + 2 * sum(prods[1:])


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------- binary COPY of (real[], int)

def xy_dtype(dim):
    """One tuple of COPY ... (FORMAT binary) with columns (x real[dim], y int4).

    PostgreSQL writes, per tuple: int16 field count, then per field an int32
    length and the value in its binary send format; real[] is int32 ndim,
    int32 flags (has nulls), uint32 element type OID, per dimension int32
    size and int32 lower bound, then per element int32 length + float4.  All
    big-endian.  With no NULL and the same length in every row, every tuple
    has the same size, so the data is an array of this packed record.
    """
    return np.dtype([
        ("nfields", ">i2"),
        ("x_len", ">i4"),
        ("ndim", ">i4"), ("flags", ">i4"), ("elemtype", ">u4"),
        ("dim", ">i4"), ("lbound", ">i4"),
        ("x", [("len", ">i4"), ("val", ">f4")], (dim,)),
        ("y_len", ">i4"), ("y", ">i4"),
    ])


def parse_copy_xy(buf):
    """Parses binary COPY output of (real[], int) into (float32[n, D], int64[n])."""
    b = np.frombuffer(buf, dtype=np.uint8)
    if bytes(b[:11]) != COPY_SIGNATURE:
        raise ValueError("not a binary COPY stream")
    ext = int.from_bytes(bytes(b[15:19]), "big")
    off = 19 + ext
    if len(b) < off + 2 or bytes(b[-2:]) != b"\xff\xff":
        raise ValueError("binary COPY stream has no trailer")
    if len(b) == off + 2:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    # the first tuple gives the dimension: nfields(2) x_len(4) ndim flags oid dim
    dim = int.from_bytes(bytes(b[off + 18:off + 22]), "big", signed=True)
    dt = xy_dtype(dim)
    body = len(b) - off - 2
    if dim <= 0 or body % dt.itemsize:
        raise ValueError(f"rows do not share one layout (stride {dt.itemsize}, {body} bytes): "
                         "every x must be a 1-D real[] of the same length without NULLs")
    n = body // dt.itemsize
    rec = np.frombuffer(b, dtype=dt, count=n, offset=off)
    checks = {
        "nfields": 2, "x_len": 20 + 8 * dim, "ndim": 1, "flags": 0,
        "elemtype": FLOAT4OID, "dim": dim, "lbound": 1, "y_len": 4,
    }
    for field, want in checks.items():
        if not np.all(rec[field] == want):
            raise ValueError(f"binary COPY layout check failed on field {field}")
    if not np.all(rec["x"]["len"] == 4):
        raise ValueError("binary COPY layout check failed: element length is not 4 (NULL element?)")
    x = rec["x"]["val"].astype(np.float32)      # big-endian strided view -> native, contiguous
    y = rec["y"].astype(np.int64)
    return x, y


def export_xy(conn, table, where="", times=None):
    t0 = time.perf_counter()
    buf = io.BytesIO()
    with conn.cursor() as cur:
        cur.copy_expert(f"COPY (SELECT x, y FROM {table}{where}) TO STDOUT (FORMAT binary)", buf)
    t1 = time.perf_counter()
    xy = parse_copy_xy(buf.getbuffer())
    if times is not None:
        times["copy_s"] = t1 - t0
        times["parse_s"] = time.perf_counter() - t1
    return xy


def verify_parser(conn, table):
    """The parser against psycopg2's own decoding of the same rows."""
    with conn.cursor() as cur:
        buf = io.BytesIO()
        cur.copy_expert(f"COPY (SELECT x, y FROM {table} ORDER BY id LIMIT 2000) TO STDOUT (FORMAT binary)", buf)
        x, y = parse_copy_xy(buf.getbuffer())
        cur.execute(f"SELECT x, y FROM {table} ORDER BY id LIMIT 2000")
        rows = cur.fetchall()
    xr = np.array([r[0] for r in rows], dtype=np.float32)
    yr = np.array([r[1] for r in rows], dtype=np.int64)
    if x.shape != xr.shape or not np.array_equal(x, xr) or not np.array_equal(y, yr):
        raise SystemExit(f"binary COPY parser disagrees with psycopg2 on {table}")
    return x.shape


def standardize_fit(x):
    mean = x.mean(axis=0, dtype=np.float64)
    var = _chunked_var(x, mean)
    sd = np.sqrt(var)
    scale = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(mean)), 1.0 / sd, 1.0)
    return mean.astype(np.float32), scale.astype(np.float32)


def _chunked_var(x, mean):
    # in blocks of about 1M values, so the temporaries stay small
    acc = np.zeros(x.shape[1], np.float64)
    m = mean.astype(np.float32)
    step = max(1, (1 << 20) // max(1, x.shape[1]))
    for i in range(0, x.shape[0], step):
        d = x[i:i + step] - m
        acc += np.square(d, dtype=np.float64).sum(axis=0)
    return acc / x.shape[0]


def standardize_apply(x, mean, scale):
    x -= mean
    x *= scale
    return x


# ------------------------------------------------------------- BLAS threads

_openblas = None


def openblas():
    global _openblas
    if _openblas is None:
        _openblas = ctypes.CDLL("libopenblas.so.0")  # the copy torch and numpy already loaded
    return _openblas


def set_threads(n):
    import torch
    torch.set_num_threads(n)
    openblas().openblas_set_num_threads(n)
    got = openblas().openblas_get_num_threads()
    if got != n:
        raise SystemExit(f"could not set OpenBLAS threads to {n} (got {got})")


# --------------------------------------------------------------- connection

class Db:
    """The benchmark's connection.  The project's test script restarts the
    throwaway cluster, so a measurement that loses its connection is thrown
    away and run again on a new one (after a warm-up that opens OpenBLAS in
    the new backend, so that no timed query pays for it)."""

    def __init__(self, dbname):
        self.dbname = dbname
        self.conn = None
        self.lost = 0

    def get(self):
        if self.conn is None or self.conn.closed:
            deadline = time.time() + 180
            while True:
                try:
                    self.conn = psycopg2.connect(dbname=self.dbname)
                    break
                except psycopg2.OperationalError:
                    if time.time() > deadline:
                        raise
                    time.sleep(2)
            self.conn.autocommit = True
            with self.conn.cursor() as cur:
                # a sequential scan of a large table may start where the last
                # one left off; off, every export hands PyTorch the rows in heap
                # order, so its results repeat (costs nothing either way)
                cur.execute("SET synchronize_seqscans = off")
                cur.execute("SELECT dltrain.train_mlp(x, y, '{\"epochs\": 1}') FROM bench_small WHERE id <= 1000")
                cur.fetchone()
        return self.conn

    def run(self, what, fn, *a, **kw):
        for attempt in range(4):
            try:
                return fn(self.get(), *a, **kw)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as e:
                self.lost += 1
                log(f"{what}: connection lost ({str(e).strip().splitlines()[0]}); measuring again")
                try:
                    self.conn.close()
                except Exception:
                    pass
                self.conn = None
                time.sleep(5)
        raise SystemExit(f"{what}: the server kept going away")

    def close(self):
        if self.conn is not None:
            self.conn.close()


# ------------------------------------------------------------------ dltrain

def dltrain_options(cfg, epochs):
    o = {
        "hidden": cfg["hidden"], "activation": "relu", "optimizer": "adam",
        "lr": cfg["lr"], "batch_size": cfg["batch"], "epochs": epochs,
        "shuffle": True, "seed": 1, "normalize": True,
    }
    if cfg.get("init"):
        o["init"] = cfg["init"]
    return o


def run_dltrain(conn, cfg, args):
    where = cfg["where"]
    opts = json.dumps(dltrain_options(cfg, args.epochs))
    with conn.cursor() as cur:
        cur.execute("SET dltrain.threads = %s", (cfg["threads"],))
        cur.execute("SET dltrain.log_epochs = on")
        del conn.notices[:]
        t0 = time.perf_counter()
        cur.execute(f"SELECT dltrain.train_mlp(x, y, %s::jsonb) FROM {cfg['table']}{where}", (opts,))
        model = cur.fetchone()[0]
        total = time.perf_counter() - t0
        notices = list(conn.notices)
        cur.execute("SELECT dltrain.describe(%s::dltrain.model)", (model,))
        desc = cur.fetchone()[0]
        cur.execute(f"SELECT avg((dltrain.predict(%s::dltrain.model, x) = y)::int)::float8 FROM {cfg['test']}",
                    (model,))
        acc = cur.fetchone()[0]
        cur.execute("RESET dltrain.threads")
    rows = desc["rows_used"]
    epoch_s, epoch_loss = [], []
    for line in notices:
        m = NOTICE_RE.search(line)
        if m:
            rate = float(m.group(4))
            epoch_s.append(rows / rate if rate > 0 else None)
            epoch_loss.append(float(m.group(3)))
    if len(epoch_s) != args.epochs:
        raise SystemExit(f"expected {args.epochs} epoch NOTICEs, got {len(epoch_s)}: {notices}")
    return {
        "rows": rows, "total_s": total, "epoch_s": epoch_s,
        "loss": desc["loss"][-1] if desc.get("loss") else None,
        "notice_loss": epoch_loss, "accuracy": acc,
    }


# ------------------------------------------------------------------ PyTorch

def torch_mlp(dims):
    """nn.Sequential of Linear layers dims[0] -> ... -> dims[-1], ReLU between."""
    import torch.nn as nn
    layers = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def run_torch(conn, cfg, args, test_xy, keep_data=False):
    import torch
    import torch.nn.functional as F

    set_threads(cfg["threads"])
    t0 = time.perf_counter()
    et = {}
    x, y = export_xy(conn, cfg["table"], cfg["where"], et)
    t1 = time.perf_counter()
    mean, scale = standardize_fit(x)
    standardize_apply(x, mean, scale)
    t2 = time.perf_counter()

    torch.manual_seed(1)
    g = torch.Generator().manual_seed(1)
    model = torch_mlp([x.shape[1]] + cfg["hidden"] + [cfg["classes"]])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    X = torch.from_numpy(x)
    Y = torch.from_numpy(y)
    n, B = X.shape[0], cfg["batch"]
    epoch_s, epoch_loss = [], []
    for _ in range(args.epochs):
        e0 = time.perf_counter()
        perm = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(0, n, B):
            idx = perm[i:i + B]
            xb = X.index_select(0, idx)
            yb = Y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * idx.shape[0]
        epoch_s.append(time.perf_counter() - e0)
        epoch_loss.append(total / n)
    t3 = time.perf_counter()

    xt, yt = test_xy
    xt = standardize_apply(xt.copy(), mean, scale)
    with torch.inference_mode():
        pred = torch.cat([model(torch.from_numpy(xt[i:i + 8192])).argmax(1)
                          for i in range(0, xt.shape[0], 8192)])
    acc = float((pred.numpy() == yt).mean())
    set_threads(1)
    out = {
        "rows": n, "export_s": t1 - t0, "copy_s": et["copy_s"], "parse_s": et["parse_s"],
        "standardize_s": t2 - t1, "train_s": t3 - t2,
        "total_s": t3 - t0, "epoch_s": epoch_s, "loss": epoch_loss[-1],
        "epoch_loss": epoch_loss, "accuracy": acc,
    }
    data = (x, y, mean, scale, t1 - t0 + t2 - t1) if keep_data else None
    return out, data


# ------------------------------------------------------------- scikit-learn

def run_sklearn(cfg, args, data, test_xy):
    from sklearn.neural_network import MLPClassifier
    from sklearn.exceptions import ConvergenceWarning

    x, y, mean, scale, prep_s = data
    if args.sklearn_rows and args.sklearn_rows < x.shape[0]:
        x, y = x[:args.sklearn_rows], y[:args.sklearn_rows]
    openblas().openblas_set_num_threads(1)
    clf = MLPClassifier(hidden_layer_sizes=tuple(cfg["hidden"]), activation="relu", solver="adam",
                        alpha=0.0, batch_size=cfg["batch"], learning_rate_init=cfg["lr"],
                        max_iter=args.epochs, shuffle=True, random_state=1, tol=0.0,
                        n_iter_no_change=args.epochs + 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(x, y)
        fit_s = time.perf_counter() - t0
    xt, yt = test_xy
    acc = float((clf.predict(standardize_apply(xt.copy(), mean, scale)) == yt).mean())
    return {
        "rows": int(x.shape[0]), "fit_s": fit_s, "epoch_s_mean": fit_s / clf.n_iter_,
        "epochs": clf.n_iter_, "loss": float(clf.loss_curve_[-1]), "accuracy": acc,
        "export_prep_s": prep_s,
    }


# ------------------------------------------------- scan floor and cache build

def run_scan(conn, cfg):
    opts = json.dumps(dict(dltrain_options(cfg, 0)))
    with conn.cursor() as cur:
        cur.execute("SET dltrain.log_epochs = off")
        t0 = time.perf_counter()
        cur.execute(f"SELECT sum(cardinality(x)) FROM {cfg['table']}{cfg['where']}")
        cur.fetchone()
        t1 = time.perf_counter()
        cur.execute(f"SELECT dltrain.train_mlp(x, y, %s::jsonb) FROM {cfg['table']}{cfg['where']}", (opts,))
        cur.fetchone()
        t2 = time.perf_counter()
    return {"scan_s": t1 - t0, "cache_s": t2 - t1}


# ------------------------------------------------------------- sgemm rate

def run_sgemm(cfg, args, dims):
    cmd = [args.sgemm, "--threads", str(cfg["threads"]), "--seconds", str(args.sgemm_seconds),
           str(cfg["batch"])] + [str(d) for d in dims]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


# ------------------------------------------------------------------ report

def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def environment(conn):
    env = {}
    with conn.cursor() as cur:
        cur.execute("SELECT version(), pg_backend_pid()")
        env["postgresql"], pid = cur.fetchone()
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'dltrain'")
        env["dltrain"] = cur.fetchone()[0]
        cur.execute("SHOW shared_buffers")
        env["shared_buffers"] = cur.fetchone()[0]
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            benv = dict(kv.split("=", 1) for kv in f.read().decode(errors="replace").split("\0") if "=" in kv)
    except OSError:
        benv = None
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY"):
        env[f"bench {k}"] = os.environ.get(k, "(unset)")
        env[f"backend {k}"] = "(unknown)" if benv is None else benv.get(k, "(unset)")
    import torch
    import sklearn
    env["torch"] = torch.__version__
    env["numpy"] = np.__version__
    env["sklearn"] = sklearn.__version__
    env["python"] = platform.python_version()
    try:
        env["openblas_pkg"] = subprocess.run(
            ["dpkg-query", "-W", "-f", "${Version}", "libopenblas0-pthread"],
            capture_output=True, text=True).stdout.strip()
    except OSError:
        env["openblas_pkg"] = "?"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        env["cpu"] = re.search(r"Model name:\s*(.*)", lscpu).group(1).strip()
    except (OSError, AttributeError):
        env["cpu"] = platform.processor()
    env["cores"] = os.cpu_count()
    try:
        root = os.path.dirname(HERE)
        env["git HEAD"] = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                                         capture_output=True, text=True).stdout.strip()
        env["git dirty"] = bool(subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "src", "sql"],
                                               capture_output=True, text=True).stdout.strip())
        libdir = subprocess.run(["pg_config", "--pkglibdir"], capture_output=True, text=True).stdout.strip()
        so = os.path.join(libdir, "dltrain.so")
        env["installed dltrain.so"] = (f"{so}, modified "
                                       f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(os.path.getmtime(so)))}")
    except OSError:
        pass
    return env


def summarize(cfgs, res, args):
    s = {}
    for name, cfg in cfgs.items():
        r = res[name]
        dl_ep = median([e for run in r["dltrain"] for e in run["epoch_s"]])
        th_ep = median([e for run in r["torch"] for e in run["epoch_s"]])
        rows = r["dltrain"][0]["rows"]
        dims = cfg["dims"]
        fpr = flops_per_row(dims)
        c = {
            "rows": rows, "threads": cfg["threads"], "dims": dims, "flops_per_row": fpr,
            "options": dltrain_options(cfg, args.epochs),
            "dl_epoch_s": dl_ep, "th_epoch_s": th_ep,
            "dl_rows_s": rows / dl_ep, "th_rows_s": rows / th_ep,
            "speedup": th_ep / dl_ep,
            "dl_total_s": median([x["total_s"] for x in r["dltrain"]]),
            "th_export_s": median([x["export_s"] for x in r["torch"]]),
            "th_prep_s": median([x["standardize_s"] for x in r["torch"]]),
            "th_copy_s": median([x["copy_s"] for x in r["torch"]]),
            "th_parse_s": median([x["parse_s"] for x in r["torch"]]),
            "th_train_s": median([x["train_s"] for x in r["torch"]]),
            "th_total_s": median([x["total_s"] for x in r["torch"]]),
            "dl_loss": median([x["loss"] for x in r["dltrain"]]),
            "th_loss": median([x["loss"] for x in r["torch"]]),
            "dl_acc": median([x["accuracy"] for x in r["dltrain"]]),
            "th_acc": median([x["accuracy"] for x in r["torch"]]),
            "sgemm_gflops": median([x["gflops"] for x in r["sgemm"]]),
        }
        c["t2m_speedup"] = c["th_total_s"] / c["dl_total_s"]
        c["dl_gflops"] = fpr * c["dl_rows_s"] / 1e9
        c["th_gflops"] = fpr * c["th_rows_s"] / 1e9
        c["dl_sgemm_frac"] = c["dl_gflops"] / c["sgemm_gflops"]
        c["th_sgemm_frac"] = c["th_gflops"] / c["sgemm_gflops"]
        c["acc_diff_points"] = 100 * (c["dl_acc"] - c["th_acc"])
        c["per_repeat_speedup"] = [median(t["epoch_s"]) / median(d["epoch_s"])
                                   for d, t in zip(r["dltrain"], r["torch"])]
        if r.get("scan"):
            c["scan_s"] = median([x["scan_s"] for x in r["scan"]])
            c["cache_s"] = median([x["cache_s"] for x in r["scan"]])
            c["cache_vs_scan"] = c["cache_s"] / c["scan_s"]
            D = dims[0]
            c["cache_bytes_ratio"] = (D * 4 + 8) / (D * 4)
        if r.get("sklearn"):
            sk = r["sklearn"]
            c["sk_rows"] = sk[0]["rows"]
            c["sk_epoch_s"] = median([x["epoch_s_mean"] for x in sk])
            c["sk_rows_s"] = c["sk_rows"] / c["sk_epoch_s"]
            c["sk_loss"] = median([x["loss"] for x in sk])
            c["sk_acc"] = median([x["accuracy"] for x in sk])
            c["sk_runs"] = len(sk)
            c["sk_fit_s"] = median([x["fit_s"] for x in sk])
        s[name] = c
    if "wide" in s and "wide_2t" in s:
        s["wide_2t"]["dl_scaling"] = s["wide"]["dl_epoch_s"] / s["wide_2t"]["dl_epoch_s"]
        s["wide_2t"]["th_scaling"] = s["wide"]["th_epoch_s"] / s["wide_2t"]["th_epoch_s"]
        s["wide_2t"]["sgemm_scaling"] = s["wide_2t"]["sgemm_gflops"] / s["wide"]["sgemm_gflops"]
        # repeat by repeat: the 1- and 2-thread runs of one repeat ran minutes apart, not interleaved
        s["wide_2t"]["per_repeat_scaling"] = [
            (median(a["epoch_s"]) / median(b["epoch_s"]), median(c["epoch_s"]) / median(d["epoch_s"]))
            for a, b, c, d in zip(res["wide"]["dltrain"], res["wide_2t"]["dltrain"],
                                  res["wide"]["torch"], res["wide_2t"]["torch"])]
    return s


def render_table(s, args):
    names = list(s)
    lines = []

    def row(label, fn):
        cells = []
        for n in names:
            try:
                cells.append(fn(s[n]))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    lines.append("| | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    row("model", lambda c: "-".join(map(str, c["dims"])))
    row("training rows / threads", lambda c: f"{c['rows']:,} / {c['threads']}")
    row("dltrain options", lambda c: "<br>".join(
        f"{k}: {json.dumps(v)}" for k, v in c["options"].items() if k in ("init", "seed", "normalize")))
    row("dltrain per-epoch s (rows/s)", lambda c: f"{c['dl_epoch_s']:.3f} ({c['dl_rows_s']:,.0f})")
    row("PyTorch per-epoch s (rows/s)", lambda c: f"{c['th_epoch_s']:.3f} ({c['th_rows_s']:,.0f})")
    row("**throughput dltrain / PyTorch**", lambda c: f"**{c['speedup']:.2f}x**")
    row("  per repeat", lambda c: ", ".join(f"{v:.2f}" for v in c["per_repeat_speedup"]))
    row("dltrain table->model s (the query)", lambda c: f"{c['dl_total_s']:.2f}")
    row("PyTorch export + standardize + train s",
        lambda c: f"{c['th_export_s']:.2f} + {c['th_prep_s']:.2f} + {c['th_train_s']:.2f} = {c['th_total_s']:.2f}")
    row("  export = COPY + parse s", lambda c: f"{c['th_copy_s']:.2f} + {c['th_parse_s']:.2f}")
    row("**table->model PyTorch / dltrain**", lambda c: f"**{c['t2m_speedup']:.2f}x**")
    row("final training loss dltrain / PyTorch", lambda c: f"{c['dl_loss']:.4f} / {c['th_loss']:.4f}")
    row("held-out accuracy dltrain / PyTorch", lambda c: f"{100 * c['dl_acc']:.2f}% / {100 * c['th_acc']:.2f}%")
    row("accuracy difference (points)", lambda c: f"{c['acc_diff_points']:+.2f}")
    row("scan floor s (sum(cardinality(x)))", lambda c: f"{c['scan_s']:.3f}")
    row("cache build s (train_mlp, epochs 0)", lambda c: f"{c['cache_s']:.3f}")
    row("**cache build / scan floor**", lambda c: f"**{c['cache_vs_scan']:.2f}x**")
    row("cache bytes / raw float32 (layout)", lambda c: f"{c['cache_bytes_ratio']:.3f}")
    row("FLOPs per row", lambda c: f"{c['flops_per_row']:,}")
    row("sgemm GFLOP/s (same shapes)", lambda c: f"{c['sgemm_gflops']:.1f}")
    row("dltrain GFLOP/s (% of sgemm)", lambda c: f"{c['dl_gflops']:.1f} ({100 * c['dl_sgemm_frac']:.0f}%)")
    row("PyTorch GFLOP/s (% of sgemm)", lambda c: f"{c['th_gflops']:.1f} ({100 * c['th_sgemm_frac']:.0f}%)")
    row("2-thread speedup dltrain / PyTorch / sgemm",
        lambda c: f"{c['dl_scaling']:.2f}x / {c['th_scaling']:.2f}x / {c['sgemm_scaling']:.2f}x")
    row("  per repeat, dltrain / PyTorch",
        lambda c: ", ".join(f"{a:.2f} / {b:.2f}" for a, b in c["per_repeat_scaling"]))
    row("sklearn MLPClassifier per-epoch s (rows/s)",
        lambda c: f"{c['sk_epoch_s']:.3f} ({c['sk_rows_s']:,.0f}) on {c['sk_rows']:,} rows, {c['sk_runs']} run(s)")
    row("sklearn loss / accuracy", lambda c: f"{c['sk_loss']:.4f} / {100 * c['sk_acc']:.2f}%")
    row("throughput dltrain / sklearn", lambda c: f"{c['dl_rows_s'] / c['sk_rows_s']:.2f}x")
    return "\n".join(lines)


def targets(s, args):
    out = []

    def t(label, ok, value):
        if ok is None:
            out.append(f"| {label} | n/a | {value} |")
        else:
            out.append(f"| {label} | {'met' if ok else 'NOT met'} | {value} |")

    out.append("| target | status | measured |")
    out.append("|---|---|---|")
    full = not args.quick and args.epochs == 5
    if "small" in s:
        c = s["small"]
        t("small: per-epoch throughput >= 2.5x PyTorch", c["speedup"] >= 2.5, f"{c['speedup']:.2f}x")
        t("small: table->model (5 epochs) >= 3x export+PyTorch",
          (c["t2m_speedup"] >= 3) if full else None, f"{c['t2m_speedup']:.2f}x" + ("" if full else " (not 5 full epochs)"))
        t("small: cache build <= 1.3x scan floor", c["cache_vs_scan"] <= 1.3, f"{c['cache_vs_scan']:.2f}x")
        t("small: cache bytes <= 1.1x raw float32 (from the layout)", c["cache_bytes_ratio"] <= 1.1,
          f"{c['cache_bytes_ratio']:.3f}x")
        t("small: accuracy within 1 point of PyTorch", abs(c["acc_diff_points"]) <= 1.0,
          f"{c['acc_diff_points']:+.2f} points")
    if "wide" in s:
        c = s["wide"]
        t("wide: per-epoch throughput >= 1.3x PyTorch", c["speedup"] >= 1.3, f"{c['speedup']:.2f}x")
        t("wide: >= 70% of OpenBLAS sgemm rate (same shapes)", c["dl_sgemm_frac"] >= 0.70,
          f"{100 * c['dl_sgemm_frac']:.0f}% ({c['dl_gflops']:.1f} of {c['sgemm_gflops']:.1f} GFLOP/s)")
        t("wide: table->model (5 epochs) >= 2x export+PyTorch",
          (c["t2m_speedup"] >= 2) if full else None, f"{c['t2m_speedup']:.2f}x" + ("" if full else " (not 5 full epochs)"))
        t("wide: cache build <= 1.3x scan floor", c["cache_vs_scan"] <= 1.3, f"{c['cache_vs_scan']:.2f}x")
        t("wide: cache bytes <= 1.1x raw float32 (from the layout)", c["cache_bytes_ratio"] <= 1.1,
          f"{c['cache_bytes_ratio']:.4f}x")
        t("wide: accuracy within 1 point of PyTorch", abs(c["acc_diff_points"]) <= 1.0,
          f"{c['acc_diff_points']:+.2f} points")
    if "wide_2t" in s:
        c = s["wide_2t"]
        t("wide: two-thread scaling (report only)", None,
          f"dltrain {c['dl_scaling']:.2f}x, PyTorch {c['th_scaling']:.2f}x, sgemm {c['sgemm_scaling']:.2f}x")
    return "\n".join(out)


def report_again(path):
    with open(path) as f:
        saved = json.load(f)
    args = argparse.Namespace(**saved["args"])
    cfgs = saved.get("configs")
    if cfgs is None:  # files written before the configurations were saved
        cfgs = {}
        for name, c in saved["summary"].items():
            o = c["options"]
            cfgs[name] = dict(dims=c["dims"], threads=c["threads"], hidden=c["dims"][1:-1], lr=o["lr"],
                              batch=o["batch_size"], init=o.get("init"))
    s = summarize(cfgs, saved["raw"], args)
    header = saved.get("header") or "".join(f"{k}: {v}\n" for k, v in saved["env"].items())
    print(header)
    print(render_table(s, args))
    print()
    print(targets(s, args))


# -------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="100,000 small rows, 20,000 wide rows, 2 epochs, 1 repeat (for development)")
    ap.add_argument("--repeats", type=int, default=None, help="repeats (default 3, quick 1)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default 5, quick 2)")
    ap.add_argument("--configs", default="small,wide,wide_2t", help="comma-separated subset of small,wide,wide_2t")
    ap.add_argument("--small-rows", type=int, default=None, help="train on rows with id <= N of bench_small")
    ap.add_argument("--wide-rows", type=int, default=None, help="train on rows with id <= N of bench_wide")
    ap.add_argument("--sklearn-repeats", type=int, default=1,
                    help="in how many repeats scikit-learn runs (0: never; default 1)")
    ap.add_argument("--sklearn-rows", type=int, default=0, help="scikit-learn on the first N rows (0: all)")
    ap.add_argument("--sgemm", default=os.path.join(HERE, "sgemm_rate"), help="the compiled sgemm_rate")
    ap.add_argument("--sgemm-seconds", type=float, default=0.4)
    ap.add_argument("--init", default="pytorch", choices=["pytorch", "he", "default"],
                    help="dltrain's \"init\" option: pytorch (nn.Linear's own initialization, the same "
                         "distribution PyTorch starts from; default), he, or default (leave the option out)")
    ap.add_argument("--report", metavar="JSON",
                    help="measure nothing: print the table of a saved bench/results/*.json again")
    ap.add_argument("--dbname", default=os.environ.get("PGDATABASE") or "dltrain_bench")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="where to write the JSON and the table")
    args = ap.parse_args()
    if args.report:
        return report_again(args.report)
    if args.quick:
        args.repeats = args.repeats or 1
        args.epochs = args.epochs if args.epochs is not None else 2
        args.small_rows = args.small_rows or 100_000
        args.wide_rows = args.wide_rows or 20_000
    args.repeats = args.repeats or 3
    args.epochs = args.epochs if args.epochs is not None else 5
    if args.epochs < 1:
        raise SystemExit("--epochs must be at least 1")

    import torch  # noqa: F401  (loads OpenBLAS before set_threads)
    set_threads(1)

    def where(n):
        return f" WHERE id <= {int(n)}" if n else ""

    all_cfgs = {
        "small": dict(table="bench_small", test="bench_small_test", hidden=[128, 64], where=where(args.small_rows),
                      threads=1),
        "wide": dict(table="bench_wide", test="bench_wide_test", hidden=[256, 128], where=where(args.wide_rows),
                     threads=1),
        "wide_2t": dict(table="bench_wide", test="bench_wide_test", hidden=[256, 128], where=where(args.wide_rows),
                        threads=2),
    }
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    for n in names:
        if n not in all_cfgs:
            raise SystemExit(f"unknown configuration {n}")
    cfgs = {n: all_cfgs[n] for n in names}

    db = Db(args.dbname)
    env = db.run("environment", environment)
    dims_of = {"bench_small": 64, "bench_wide": 784}
    for cfg in cfgs.values():
        cfg.update(batch=128, lr=1e-3, classes=10, init=None if args.init == "default" else args.init)
        cfg["dims"] = [dims_of[cfg["table"]]] + cfg["hidden"] + [cfg["classes"]]

    log(f"verifying the binary COPY parser; {args.repeats} repeat(s), {args.epochs} epoch(s)")
    for table in sorted({c["table"] for c in cfgs.values()} | {c["test"] for c in cfgs.values()}):
        db.run("parser check", verify_parser, table)
    tests = {}
    for cfg in cfgs.values():
        if cfg["test"] not in tests:
            tests[cfg["test"]] = db.run("test export", export_xy, cfg["test"])

    # warm-up: reads the tables once, untimed
    def warm(conn):
        with conn.cursor() as cur:
            for table in sorted({c["table"] for c in cfgs.values()}):
                cur.execute(f"SELECT sum(cardinality(x)) FROM {table}")
                cur.fetchone()
    db.run("warm-up", warm)

    res = {n: {"dltrain": [], "torch": [], "sgemm": [], "scan": [], "sklearn": []} for n in cfgs}
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    for rep in range(args.repeats):
        for name, cfg in cfgs.items():
            order = ["dltrain", "torch"] if rep % 2 == 0 else ["torch", "dltrain"]
            data = None
            for who in order:
                if who == "dltrain":
                    r = db.run(f"{name} dltrain", run_dltrain, cfg, args)
                    res[name]["dltrain"].append(r)
                    log(f"rep {rep + 1} {name} dltrain: query {r['total_s']:.2f} s, epochs "
                        + " ".join(f"{e:.3f}" for e in r["epoch_s"])
                        + f" s, loss {r['loss']:.4f}, acc {r['accuracy']:.4f}")
                else:
                    want = name == "small" and rep < args.sklearn_repeats
                    r, data = db.run(f"{name} torch", run_torch, cfg, args, tests[cfg["test"]], keep_data=want)
                    res[name]["torch"].append(r)
                    log(f"rep {rep + 1} {name} torch: export {r['export_s']:.2f} s, train {r['train_s']:.2f} s, epochs "
                        + " ".join(f"{e:.3f}" for e in r["epoch_s"])
                        + f" s, loss {r['loss']:.4f}, acc {r['accuracy']:.4f}")
            if data is not None:
                r = run_sklearn(cfg, args, data, tests[cfg["test"]])
                res[name]["sklearn"].append(r)
                log(f"rep {rep + 1} {name} sklearn: {r['rows']} rows, fit {r['fit_s']:.2f} s, "
                    f"loss {r['loss']:.4f}, acc {r['accuracy']:.4f}")
            del data
        for name, cfg in cfgs.items():
            if cfg["threads"] == 1:
                r = db.run(f"{name} scan", run_scan, cfg)
                res[name]["scan"].append(r)
                log(f"rep {rep + 1} {name}: scan floor {r['scan_s']:.3f} s, cache build {r['cache_s']:.3f} s")
        for name, cfg in cfgs.items():
            r = run_sgemm(cfg, args, cfg["dims"])
            res[name]["sgemm"].append(r)
            log(f"rep {rep + 1} {name}: sgemm {r['gflops']:.1f} GFLOP/s ({cfg['threads']} thread(s))")
    elapsed = time.perf_counter() - t_start
    env["load average at start / end"] = f"{load0[0]:.2f} / {os.getloadavg()[0]:.2f}"
    env["measurements repeated after a lost connection"] = db.lost
    db.close()

    s = summarize(cfgs, res, args)
    tab = render_table(s, args)
    tgt = targets(s, args)
    cmdline = "bash bench/run.sh " + " ".join(sys.argv[1:])
    header = (f"dltrain benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}, "
              f"{args.repeats} repeat(s), {args.epochs} epoch(s), {elapsed:.0f} s\n"
              f"command: {cmdline.strip()}\n"
              + "".join(f"{k}: {v}\n" for k, v in env.items()))
    print()
    print(header)
    print(tab)
    print()
    print(tgt)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(args.out, f"bench-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "env": env, "header": header, "configs": cfgs, "summary": s, "raw": res},
                  f, indent=1, default=str)
    with open(os.path.join(args.out, f"bench-{stamp}.md"), "w") as f:
        f.write(header + "\n" + tab + "\n\n" + tgt + "\n")
    print(f"\nwritten: {os.path.join(args.out, f'bench-{stamp}.json')} and .md")


if __name__ == "__main__":
    main()
