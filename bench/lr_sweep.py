#!/usr/bin/env python3
"""Per-epoch training time at each learning rate (issue: speed that does not
depend on the values trained).

A sweep always includes the configurations that train badly: large learning
rates, confident models, saturated units.  Their probabilities underflow
into the subnormal range; the kernels flush subnormals to zero, so every
learning rate should train at the same speed.  Per model, learning rate and
cache (in memory, spilled at dltrain.cache_mem = 64MB), the time of
train_mlp with E epochs minus the time with 0 epochs (the scan and the cache
build), divided by E; medians over repeats; the slowest over the fastest
learning rate per row is the figure (target <= 1.25x).

    /usr/bin/python3 bench/lr_sweep.py [--repeats 3] [--epochs 2]
(the tables come from bench/run.sh: bench_wide, 100,000 x 784, 10 classes)
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402

LRS = [0.0001, 0.001, 0.01, 0.1, 0.3]
MODELS = {"logistic 784-10": [], "784-256-128-10": [256, 128]}


def timed(conn, hidden, lr, epochs, spilled):
    opts = {"hidden": hidden, "optimizer": "adam", "lr": lr, "batch_size": 128,
            "epochs": epochs, "seed": 5, "init": "pytorch"}
    with conn.cursor() as cur:
        cur.execute("SET dltrain.cache_mem = %s", ("64MB" if spilled else "1GB",))
        t0 = time.perf_counter()
        cur.execute("SELECT dltrain.train_mlp(x, y, %s::jsonb) IS NOT NULL FROM bench_wide",
                    (json.dumps(opts),))
        cur.fetchone()
        secs = time.perf_counter() - t0
        cur.execute("RESET dltrain.cache_mem")
    return secs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbname", default=os.environ.get("PGDATABASE", "dltrain_bench"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--caches", default="memory,spilled")
    args = ap.parse_args()
    db = B.Db(args.dbname)
    conn = db.get()
    rows = []
    for name in args.models.split(","):
        for cache in args.caches.split(","):
            spilled = cache == "spilled"
            per = {}
            for lr in LRS:
                samples = []
                for _ in range(args.repeats):
                    t0 = db.run("epochs 0", timed, MODELS[name], lr, 0, spilled)
                    tE = db.run("epochs", timed, MODELS[name], lr, args.epochs, spilled)
                    samples.append(max(tE - t0, 1e-9) / args.epochs)
                per[lr] = statistics.median(samples)
                B.log(f"{name}, {cache}, lr {lr}: {per[lr]:.3f} s/epoch")
            rows.append((name, cache, per))
    lines = ["| model | cache | " + " | ".join(f"lr {lr}" for lr in LRS) + " | slowest / fastest |",
             "|---|---|" + "---|" * len(LRS) + "---|"]
    for name, cache, per in rows:
        lines.append(f"| {name} | {cache} | " + " | ".join(f"{per[lr]:.3f}" for lr in LRS)
                     + f" | {max(per.values()) / min(per.values()):.2f}x |")
    text = (f"per-epoch seconds by learning rate, {time.strftime('%Y-%m-%d %H:%M')}, "
            f"median of {args.repeats}, {args.epochs} epoch(s), bench_wide (100,000 x 784), Adam, batch 128\n"
            f"command: python3 bench/lr_sweep.py {' '.join(sys.argv[1:])}\n\n" + "\n".join(lines) + "\n")
    print()
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"lr_sweep-{time.strftime('%Y%m%d-%H%M%S')}.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
