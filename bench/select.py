#!/usr/bin/env python3
"""Model selection: K configurations in one statement against K statements,
and against K PyTorch trainings on data exported once.

Run it through bench/run.sh (dependencies, cluster, tables):

    bash bench/run.sh --select [--repeats N] [--cases logistic,mlp]

or directly, once the tables exist:

    /usr/bin/python3 bench/select.py [--repeats N] [--cases logistic,mlp]

Cases (batch 128, Adam, seed 1, "init": "pytorch"; the K = 8 configurations
differ in learning rate, 1e-4 to 0.3, the sweep a user runs, chaotic ones
included):

  logistic  bench_small (1,000,000 x 64), hidden [], 2 epochs  data-bound
  wide      bench_wide (100,000 x 784), hidden [], 1 epoch     Fashion-MNIST-like
  mlp       bench_small, hidden [128, 64], 1 epoch             compute-bound

Per case and repeat, in this order:
  one       SELECT train_mlp(x, y, o1), ..., train_mlp(x, y, o8) FROM t
            (the planner hook merges them: one scan, one cache, one batch
            stream) with dltrain.fusion = on: first layers in one GEMM
  nofuse    the same with dltrain.fusion = off
  (the default, dltrain.fusion = auto, is "on" for the logistic case and
  "off" for the mlp case)
  separate  8 statements SELECT train_mlp(x, y, ok) FROM t, one after the other
  torch     one binary COPY export (timed once), then 8 PyTorch trainings of
            the same configurations (as bench.py trains them)
Reported: medians over repeats; ratios from the same run.  The merged models
are also checked against the separate ones: the share of held-out rows
(bench_small_test) on which their predictions agree, and their accuracies.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench as B  # noqa: E402  (the helpers of the main benchmark)

LRS = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003, 0.0001]
CASES = {
    "logistic": dict(hidden=[], epochs=2, table="bench_small", test="bench_small_test", width=64),
    "wide": dict(hidden=[], epochs=1, table="bench_wide", test="bench_wide_test", width=784),
    "mlp": dict(hidden=[128, 64], epochs=1, table="bench_small", test="bench_small_test", width=64),
}


def options(case, lr):
    return {"hidden": CASES[case]["hidden"], "activation": "relu", "optimizer": "adam",
            "lr": lr, "batch_size": 128, "epochs": CASES[case]["epochs"], "shuffle": True,
            "seed": 1, "normalize": True, "init": "pytorch"}


def one_statement(conn, case, table, fusion):
    calls = ", ".join(f"dltrain.train_mlp(x, y, %s::jsonb) AS m{k}" for k in range(len(LRS)))
    with conn.cursor() as cur:
        cur.execute("SET dltrain.fusion = %s", ("on" if fusion else "off",))
        cur.execute(f"EXPLAIN (VERBOSE, COSTS OFF) SELECT {calls} FROM {table}",
                    [json.dumps(options(case, lr)) for lr in LRS])
        plan = "\n".join(r[0] for r in cur.fetchall())
        if "train_mlp_multi" not in plan:
            raise SystemExit("the planner hook did not merge the calls (is dltrain preloaded?)")
        t0 = time.perf_counter()
        cur.execute(f"SELECT {calls} FROM {table}", [json.dumps(options(case, lr)) for lr in LRS])
        models = list(cur.fetchone())
        secs = time.perf_counter() - t0
        cur.execute("RESET dltrain.fusion")
    return secs, models


def separate(conn, case, table):
    models, secs = [], 0.0
    with conn.cursor() as cur:
        for lr in LRS:
            t0 = time.perf_counter()
            cur.execute(f"SELECT dltrain.train_mlp(x, y, %s::jsonb) FROM {table}",
                        (json.dumps(options(case, lr)),))
            models.append(cur.fetchone()[0])
            secs += time.perf_counter() - t0
    return secs, models


def torch_runs(conn, case, table, test_xy):
    import torch
    import torch.nn.functional as F

    B.set_threads(1)
    t0 = time.perf_counter()
    x, y = B.export_xy(conn, table, "", {})
    mean, scale = B.standardize_fit(x)
    B.standardize_apply(x, mean, scale)
    export_s = time.perf_counter() - t0
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    xt, yt = test_xy
    xt = torch.from_numpy(B.standardize_apply(xt.copy(), mean, scale))
    train_s, accs = 0.0, []
    for lr in LRS:
        t1 = time.perf_counter()
        torch.manual_seed(1)
        g = torch.Generator().manual_seed(1)
        model = B.torch_mlp([x.shape[1]] + CASES[case]["hidden"] + [10])
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        n = X.shape[0]
        for _ in range(CASES[case]["epochs"]):
            perm = torch.randperm(n, generator=g)
            for i in range(0, n, 128):
                idx = perm[i:i + 128]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(X.index_select(0, idx)), Y.index_select(0, idx))
                loss.backward()
                opt.step()
        train_s += time.perf_counter() - t1
        with torch.inference_mode():
            accs.append(float((model(xt).argmax(1).numpy() == yt).mean()))
    return export_s, train_s, accs


def agreement(conn, merged, alone, test):
    """Share of held-out rows where the merged and the separate model agree,
    and the two accuracies."""
    out = []
    with conn.cursor() as cur:
        for m, a in zip(merged, alone):
            cur.execute(f"""SELECT avg((dltrain.predict(%s::dltrain.model, x) = dltrain.predict(%s::dltrain.model, x))::int)::float8,
                                   avg((dltrain.predict(%s::dltrain.model, x) = y)::int)::float8,
                                   avg((dltrain.predict(%s::dltrain.model, x) = y)::int)::float8,
                                   %s::text = %s::text
                            FROM {test}""", (m, a, m, a, m, a))
            out.append(cur.fetchone())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbname", default=os.environ.get("PGDATABASE", "dltrain_bench"))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--cases", default="logistic,wide,mlp")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    cases = args.cases.split(",")
    db = B.Db(args.dbname)
    conn = db.get()
    tests = {}
    res = {c: {"one": [], "nofuse": [], "separate": [], "torch_export": [], "torch_train": []} for c in cases}
    checks = {}
    started = time.time()
    for rep in range(args.repeats):
        for case in cases:
            r = res[case]
            table, test = CASES[case]["table"], CASES[case]["test"]
            s, merged = db.run("one statement", one_statement, case, table, True)
            r["one"].append(s)
            B.log(f"{case} #{rep + 1}: one statement {s:.2f} s")
            s, nofuse = db.run("one statement, fusion off", one_statement, case, table, False)
            r["nofuse"].append(s)
            B.log(f"{case} #{rep + 1}: fusion off {s:.2f} s")
            s, alone = db.run("separate statements", separate, case, table)
            r["separate"].append(s)
            B.log(f"{case} #{rep + 1}: 8 statements {s:.2f} s")
            if not args.no_torch:
                if test not in tests:
                    tests[test] = B.export_xy(conn, test, "", {})
                e, t, accs = db.run("pytorch", torch_runs, case, table, tests[test])
                r["torch_export"].append(e)
                r["torch_train"].append(t)
                r["torch_acc"] = accs
                B.log(f"{case} #{rep + 1}: PyTorch export {e:.2f} s + 8 trainings {t:.2f} s")
            if rep == 0:
                checks[case] = {
                    "fused": db.run("agreement", agreement, merged, alone, test),
                    "nofuse_identical": [a == b for a, b in zip(nofuse, alone)],
                }
    med = {c: {k: (statistics.median(v) if isinstance(v, list) and v and not isinstance(v[0], (list, tuple)) else v)
               for k, v in res[c].items()} for c in cases}
    env = B.environment(conn)
    lines = ["| case | 1 statement, K=8 (s) | 8 statements (s) | speedup, median (min-max of repeats) | fusion off (s) | from fusion | PyTorch: export once + 8 trainings (s) | vs PyTorch |",
             "|---|---|---|---|---|---|---|---|"]
    for c in cases:
        m = med[c]
        ups = [b / a for a, b in zip(res[c]["one"], res[c]["separate"])]
        torch_total = (m["torch_export"] + m["torch_train"]) if m["torch_export"] else None
        lines.append(f"| {c} ({'-'.join(str(d) for d in [CASES[c]['width']] + CASES[c]['hidden'] + [10])}, {CASES[c]['epochs']} epoch(s)) "
                     f"| {m['one']:.2f} | {m['separate']:.2f} | {statistics.median(ups):.2f}x ({min(ups):.2f}-{max(ups):.2f}) "
                     f"| {m['nofuse']:.2f} | {m['nofuse'] / m['one']:.2f}x "
                     f"| {B.fmt(torch_total, '.2f')} | {B.fmt(torch_total / m['one'] if torch_total else None, '.2f')}x |")
    eq = []
    for c in cases:
        f = checks[c]["fused"]
        eq.append(f"{c}: fusion off, merged == alone byte for byte for {sum(checks[c]['nofuse_identical'])}/{len(LRS)} models; "
                  f"fusion on: {sum(1 for x in f if x[3])}/{len(LRS)} byte-identical, "
                  f"prediction agreement min {min(x[0] for x in f):.4%}, "
                  f"max accuracy difference {max(abs(x[1] - x[2]) for x in f) * 100:.3f} points")
    header = (f"dltrain model selection benchmark, {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{args.repeats} repeat(s), {time.time() - started:.0f} s\n"
              f"command: python3 bench/select.py {' '.join(sys.argv[1:])}\n"
              f"learning rates: {LRS}\n" + "".join(f"{k}: {v}\n" for k, v in env.items()))
    text = header + "\n" + "\n".join(lines) + "\n\n" + "\n".join(eq) + "\n"
    print()
    print(text)
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    with open(os.path.join(args.out, f"select-{stamp}.json"), "w") as f:
        json.dump({"args": vars(args), "env": env, "raw": res, "median": med, "checks": checks}, f,
                  indent=1, default=str)
    with open(os.path.join(args.out, f"select-{stamp}.md"), "w") as f:
        f.write(text)
    print(f"written: {os.path.join(args.out, f'select-{stamp}.md')}")


if __name__ == "__main__":
    main()
