#!/usr/bin/env python3
"""Training that continues: warm start against training from scratch, the
cost of a checkpoint, and the overhead of a resume.

    /usr/bin/python3 bench/continuing.py [--epochs 6]
(the tables come from bench/run.sh: bench_wide, 100,000 x 784, 10 classes)

1. Warm start.  A 784-256-128-10 model trained from scratch on bench_wide
   (validation_fraction 0.1) against one warm-started from a model trained
   on the rows with an even id: epochs and seconds until the validation loss
   reaches what the scratch run has after its last epoch.
2. A checkpoint's cost, per model size: the bytes of a checkpoint against
   the model alone, the seconds and WAL bytes of storing it in a table
   (INSERT, one transaction).
3. Resume: fit 4 epochs with checkpoint_every 2 cancelled after the first
   checkpoint is what a crash leaves; here the resume from the epoch-2
   checkpoint to epoch 4 against 2 epochs of the uninterrupted run: the
   difference is what a resume costs (the first pass that rebuilds the
   classes, statistics and held-out split).
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


def q(conn, sql, args=()):
    with conn.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute(sql, args)
        rows = cur.fetchall() if cur.description else None
        return time.perf_counter() - t0, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dbname", default=os.environ.get("PGDATABASE", "dltrain_bench"))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=0.0003)
    ap.add_argument("--base-epochs", type=int, default=1)
    args = ap.parse_args()
    conn = B.Db(args.dbname).get()
    out = []
    base = {"hidden": [256, 128], "optimizer": "adam", "lr": args.lr, "batch_size": 128,
            "seed": 1, "validation_fraction": 0.1}

    # 1. warm start: epochs and seconds to the scratch run's best validation loss
    o = dict(base, epochs=args.epochs)
    _, r = q(conn, "SELECT dltrain.describe(dltrain.train_mlp(x, y, %s::jsonb))->'validation_loss' FROM bench_wide",
             (json.dumps(o),))
    scratch = r[0][0]
    target = min(scratch)
    s_base, _ = q(conn, "CREATE TEMP TABLE warm_base AS SELECT dltrain.train_mlp(x, y, %s::jsonb) AS m FROM bench_wide WHERE id %% 2 = 0",
                  (json.dumps(dict(base, epochs=args.base_epochs)),))
    warm_sql = ("SELECT dltrain.describe(dltrain.train_mlp(x, y, jsonb_build_object('epochs', %s::int, 'lr', " + repr(args.lr) + ", 'batch_size', 128, 'seed', 1, "
                "'validation_fraction', 0.1, 'warm_start', jsonb_build_object('model', m::text))))->'validation_loss' FROM bench_wide, warm_base")
    _, r = q(conn, warm_sql, (args.epochs,))
    warm = r[0][0]
    e_scratch = scratch.index(target) + 1
    e_warm = next((i + 1 for i, v in enumerate(warm) if v <= target), None)
    s_scratch, _ = q(conn, "SELECT dltrain.train_mlp(x, y, %s::jsonb) IS NOT NULL FROM bench_wide",
                     (json.dumps(dict(base, epochs=e_scratch)),))
    out.append(f"warm start (784-256-128-10 on bench_wide, validation_fraction 0.1, Adam lr {args.lr}):")
    out.append(f"  scratch: validation loss by epoch {['%.4f' % v for v in scratch]}; its best, {target:.4f}, "
               f"after {e_scratch} epoch(s): {s_scratch:.1f} s (the query, cache build included)")
    if e_warm:
        s_warm, _ = q(conn, warm_sql, (e_warm,))
        out.append(f"  warm start from a {args.base_epochs}-epoch model of the even rows ({s_base:.1f} s to make): validation loss by epoch "
                   f"{['%.4f' % v for v in warm]}; {target:.4f} or lower after {e_warm} epoch(s): {s_warm:.1f} s")
    else:
        out.append(f"  warm start: validation loss by epoch {['%.4f' % v for v in warm]} never reached {target:.4f}")

    # 2. a checkpoint's cost
    out.append("checkpoint cost (Adam; one INSERT of the model into a table, one transaction):")
    q(conn, "DROP TABLE IF EXISTS dltrain_ck_store")
    q(conn, "CREATE TABLE dltrain_ck_store (m dltrain.model)")  # logged: its WAL counts
    for hidden in ([], [256, 128], [1024, 1024]):
        o = {"hidden": hidden, "epochs": 1, "seed": 1}
        _, r = q(conn, "SELECT dltrain.train_mlp(x, y, %s::jsonb)::text, dltrain.train_mlp(x, y, %s::jsonb)::text FROM bench_wide WHERE id <= 5000",
                 (json.dumps(o), json.dumps(dict(o, checkpoint=True))))
        plain, ck = r[0]
        _, r = q(conn, "SELECT pg_column_size(%s::dltrain.model), pg_column_size(%s::dltrain.model), pg_current_wal_insert_lsn()", (plain, ck))
        size_plain, size_ck, lsn0 = r[0]
        secs, _ = q(conn, "INSERT INTO dltrain_ck_store VALUES (%s::dltrain.model)", (ck,))
        _, r = q(conn, "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (lsn0,))
        out.append(f"  {'-'.join(str(d) for d in [784] + hidden + [10])}: model {size_plain:,} bytes stored, "
                   f"checkpoint {size_ck:,} ({size_ck / size_plain:.2f}x); INSERT {secs * 1000:.0f} ms, WAL {int(r[0][0]):,} bytes")

    q(conn, "DROP TABLE dltrain_ck_store")

    # 3. resume overhead (fit)
    o = {"hidden": [256, 128], "epochs": 4, "seed": 1, "buffer_rows": 20000}
    s_full, _ = q(conn, "SELECT count(*) FROM dltrain.fit('bench_wide', '{x}', 'y', %s::jsonb)", (json.dumps(o),))
    _, r = q(conn, "SELECT model::text FROM dltrain.fit('bench_wide', '{x}', 'y', %s::jsonb) WHERE model IS NOT NULL",
             (json.dumps(dict(o, epochs=2, checkpoint=True)),))
    ck = r[0][0]
    s_resume, r = q(conn, "SELECT model::text FROM dltrain.fit('bench_wide', '{x}', 'y', %s::jsonb || jsonb_build_object('resume', jsonb_build_object('model', %s::text))) WHERE model IS NOT NULL",
                    (json.dumps(o), ck))
    _, same = q(conn, "SELECT (SELECT model::text FROM dltrain.fit('bench_wide', '{x}', 'y', %s::jsonb) WHERE model IS NOT NULL) = %s",
                (json.dumps(o), r[0][0]))
    out.append(f"resume (fit, 784-256-128-10, 4 epochs): uninterrupted {s_full:.1f} s (2 epochs: about {s_full / 2:.1f} s); "
               f"resume from the epoch-2 checkpoint to epoch 4: {s_resume:.1f} s, so the resume costs {s_resume - s_full / 2:.1f} s "
               f"over the 2 epochs it trains; same bytes as uninterrupted: {same[0][0]}")
    text = (f"continuing benchmark, {time.strftime('%Y-%m-%d %H:%M')}\ncommand: python3 bench/continuing.py {' '.join(sys.argv[1:])}\n\n"
            + "\n".join(out) + "\n")
    print(text)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"continuing-{time.strftime('%Y%m%d-%H%M%S')}.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
