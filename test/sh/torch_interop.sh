#!/usr/bin/env bash
# Weights that travel: a model exported by dltrain loads into PyTorch and
# predicts the same (within 1e-5); a network built in PyTorch imports into
# dltrain and predicts the same.  Needs python3-torch (installed by
# scripts/test.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
eval "$(scripts/cluster.sh env)"
db=dltrain_torch_test
dir=$(mktemp -d /tmp/dltrain-torch.XXXXXX)
trap 'rm -rf "$dir"' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 -d $db "$@"; }

psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "SET client_min_messages = warning" \
	-c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q <<'SQL'
CREATE EXTENSION dltrain;
SELECT setseed(0.3) AS s \gset
CREATE TABLE pts AS
SELECT i, ARRAY[random() * 4 - 2, random() * 4 - 2, random() * 10]::real[] AS x FROM generate_series(1, 300) i;
ALTER TABLE pts ADD COLUMN y int, ADD COLUMN t float8;
UPDATE pts SET y = (CASE WHEN x[1] * x[2] > 0 THEN 1 ELSE 0 END) + (CASE WHEN x[3] > 5 THEN 2 ELSE 0 END),
               t = sin(x[1]) + x[2] * x[3] / 10;
CREATE TABLE models AS
SELECT dltrain.train_mlp(x, y, '{"hidden": [32, 16], "activation": "relu", "epochs": 20, "lr": 0.01}') AS cls,
       dltrain.train_mlp(x, t, '{"hidden": [16], "activation": "tanh", "epochs": 20, "lr": 0.01}') AS reg
FROM pts;
SQL
psql -X -At -d $db -c "SELECT dltrain.export(cls) FROM models" >"$dir/cls.json"
psql -X -At -d $db -c "SELECT dltrain.export(reg) FROM models" >"$dir/reg.json"
psql -X -At -d $db -c "SELECT json_agg(x ORDER BY i) FROM pts" >"$dir/x.json"
psql -X -At -d $db -c "SELECT json_agg(dltrain.predict_proba(cls, x) ORDER BY i) FROM pts, models" >"$dir/cls_pred.json"
psql -X -At -d $db -c "SELECT json_agg(dltrain.predict(reg, x) ORDER BY i) FROM pts, models" >"$dir/reg_pred.json"

# PyTorch: load dltrain's models and compare; build a network and export it
/usr/bin/python3 - "$dir" <<'PY'
import json, sys
import torch
from torch import nn

d = sys.argv[1]
load = lambda name: json.load(open(f"{d}/{name}"))
ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}

def to_torch(m):
    """The README's recipe: dltrain.export() layout -> nn.Sequential."""
    layers = []
    for i, l in enumerate(m["layers"]):
        lin = nn.Linear(l["in"], l["out"])
        lin.weight.data = torch.tensor(l["weight"], dtype=torch.float32)
        lin.bias.data = torch.tensor(l["bias"], dtype=torch.float32)
        layers.append(lin)
        if i < len(m["layers"]) - 1:
            layers.append(ACT[m["activation"]]())
    net = nn.Sequential(*layers)
    norm = m["normalization"]
    mean = torch.tensor(norm["mean"], dtype=torch.float32) if norm else None
    scale = torch.tensor(norm["scale"], dtype=torch.float32) if norm else None
    def predict(x):
        if norm:
            x = (x - mean) * scale
        out = net(x)
        return torch.softmax(out, dim=1) if m["task"] == "classification" else out[:, 0]
    return predict

x = torch.tensor(load("x.json"), dtype=torch.float32)
fail = 0
with torch.no_grad():
    for name, pred in (("cls", "cls_pred.json"), ("reg", "reg_pred.json")):
        ours = torch.tensor(load(pred), dtype=torch.float32)
        theirs = to_torch(load(f"{name}.json"))(x)
        diff = (ours - theirs).abs().max().item()
        ok = diff <= 1e-5
        fail |= not ok
        print(f"{'ok' if ok else 'not ok'}: dltrain {name} model in PyTorch, max |difference| {diff:.2e}")

    # a PyTorch network (sigmoid, no normalization) for dltrain to import
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(3, 8), nn.Sigmoid(), nn.Linear(8, 5), nn.Sigmoid(), nn.Linear(5, 4))
    lin = [m for m in net if isinstance(m, nn.Linear)]
    doc = {"format": "dltrain.mlp", "format_version": 1, "task": "classification",
           "activation": "sigmoid", "inputs": 3, "outputs": 4, "label_type": "text",
           "classes": ["a", "b", "c", "d"], "normalization": None,
           "layers": [{"in": l.in_features, "out": l.out_features,
                       "weight": l.weight.tolist(), "bias": l.bias.tolist()} for l in lin]}
    json.dump(doc, open(f"{d}/torch_model.json", "w"))
    json.dump(torch.softmax(net(x), dim=1).tolist(), open(f"{d}/torch_pred.json", "w"))
sys.exit(fail)
PY

# dltrain: import the PyTorch network and predict
echo "CREATE TABLE imported AS SELECT dltrain.import(:'model'::jsonb) AS m;" | q -v model="$(cat "$dir/torch_model.json")"
psql -X -At -d $db -c "SELECT json_agg(dltrain.predict_proba(m, x) ORDER BY i) FROM pts, imported" >"$dir/imported_pred.json"
/usr/bin/python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
a = json.load(open(f"{d}/imported_pred.json"))
b = json.load(open(f"{d}/torch_pred.json"))
diff = max(abs(u - v) for ra, rb in zip(a, b) for u, v in zip(ra, rb))
ok = len(a) == len(b) == 300 and diff <= 1e-5
print(f"{'ok' if ok else 'not ok'}: PyTorch network imported into dltrain, max |difference| {diff:.2e}")
sys.exit(0 if ok else 1)
PY
psql -X -q -d postgres -c "DROP DATABASE $db"
