#!/usr/bin/env python3
"""Inference at scale: dltrain's scalar predict (serial and parallel workers),
predict_batch (batched GEMMs), against PyTorch on exported rows.

    /usr/bin/python3 bench/inference.py [--table bench_small] [--rows N]

Needs the tables of bench/run.sh and the throwaway cluster
(eval "$(scripts/cluster.sh env)").  One model (64-128-64-10 on the table's
features, one epoch; the model's speed does not depend on its accuracy) is
trained once; then, medians of --repeats, one thread each unless said:

  predict            SELECT count(dltrain.predict(m, x)) FROM t
  predict, 2 workers the same with a parallel plan (2 workers, leader off)
  predict_batch      SELECT count(*) FROM dltrain.predict_batch(m, 't', 'x', 'id')
  PyTorch            the model exported with dltrain.export(), loaded into
                     nn.Sequential; rows exported with binary COPY (as
                     bench.py does), standardized, scored in batches of 1024
                     under torch.no_grad(); export and scoring timed apart.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the export and parsing code of the training benchmark)
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402


def timed(cur, q, args=None, reps=3):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        cur.execute(q, args)
        cur.fetchall()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def torch_model(m):
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[m["activation"]]
    layers = []
    for i, l in enumerate(m["layers"]):
        lin = nn.Linear(l["in"], l["out"])
        lin.weight.data = torch.tensor(l["weight"], dtype=torch.float32)
        lin.bias.data = torch.tensor(l["bias"], dtype=torch.float32)
        layers += [lin] + ([act()] if i < len(m["layers"]) - 1 else [])
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbname", default="dltrain_bench")
    ap.add_argument("--table", default="bench_small")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    torch.set_num_threads(1)
    bench.set_threads(1)
    conn = bench.psycopg2.connect(dbname=args.dbname)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f"SELECT count(*) FROM {args.table}")
    n = cur.fetchone()[0]
    cur.execute("DROP TABLE IF EXISTS bench_inference_model")
    cur.execute(f"CREATE TABLE bench_inference_model AS SELECT dltrain.train_mlp(x, y, "
                f"'{{\"hidden\": [128, 64], \"epochs\": 1, \"seed\": 1, \"init\": \"pytorch\"}}') AS m FROM {args.table}")
    model_q = "(SELECT m FROM bench_inference_model)"

    res = {}
    res["predict"] = timed(cur, f"SELECT count(dltrain.predict({model_q}, x)) FROM {args.table}", reps=args.repeats)
    cur.execute("SET max_parallel_workers_per_gather = 2")
    cur.execute("SET parallel_setup_cost = 0")
    cur.execute("SET parallel_tuple_cost = 0")
    cur.execute("SET parallel_leader_participation = off")
    cur.execute(f"EXPLAIN SELECT count(*) FROM {args.table} WHERE dltrain.predict({model_q}, x) >= 0")
    plan = "\n".join(r[0] for r in cur.fetchall())
    workers = "Workers Planned: 2" in plan
    res["predict, 2 workers"] = timed(cur, f"SELECT count(*) FROM {args.table} WHERE dltrain.predict({model_q}, x) >= 0",
                                      reps=args.repeats)
    for s in ("max_parallel_workers_per_gather", "parallel_setup_cost", "parallel_tuple_cost",
              "parallel_leader_participation"):
        cur.execute(f"RESET {s}")
    res["predict_batch"] = timed(cur, f"SELECT count(*) FROM dltrain.predict_batch({model_q}, %s, 'x', 'id')",
                                 (args.table,), reps=args.repeats)

    cur.execute("SELECT dltrain.export(m) FROM bench_inference_model")
    m = cur.fetchone()[0]
    if isinstance(m, str):
        m = json.loads(m)
    net = torch_model(m).eval()
    mean = np.asarray(m["normalization"]["mean"], np.float32)
    scale = np.asarray(m["normalization"]["scale"], np.float32)
    exp_t, inf_t = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        x, _ = bench.export_xy(conn, args.table)
        t1 = time.perf_counter()
        with torch.no_grad():
            xt = torch.from_numpy((x - mean) * scale)
            out = [torch.softmax(net(xt[i:i + 1024]), dim=1).argmax(dim=1) for i in range(0, len(xt), 1024)]
            torch.cat(out)
        t2 = time.perf_counter()
        exp_t.append(t1 - t0)
        inf_t.append(t2 - t1)
        del x, xt, out
    exp_s, inf_s = statistics.median(exp_t), statistics.median(inf_t)
    cur.execute("DROP TABLE bench_inference_model")

    print(f"{args.table}: {n:,} rows, model 64-128-64-10, medians of {args.repeats}"
          f" (parallel plan used: {'yes' if workers else 'NO'})")
    print()
    print("| | s | rows/s | vs PyTorch scoring | vs PyTorch export + scoring |")
    print("|---|---:|---:|---:|---:|")
    for k, s in res.items():
        print(f"| dltrain {k} | {s:.3f} | {n / s:,.0f} | {inf_s / s:.2f}x | {(exp_s + inf_s) / s:.2f}x |")
    print(f"| PyTorch scoring (rows in memory) | {inf_s:.3f} | {n / inf_s:,.0f} | 1.00x | |")
    print(f"| PyTorch export (binary COPY + parse) | {exp_s:.3f} | {n / exp_s:,.0f} | | |")
    print(f"| PyTorch export + scoring | {exp_s + inf_s:.3f} | {n / (exp_s + inf_s):,.0f} | | 1.00x |")


if __name__ == "__main__":
    main()
