"""The inference contract of this trainer (docs/trainers.md, "Inference contract").

  stdin    CSV with a header row: the feature columns (no label, no protected attributes)
  stdout   CSV `score,prediction`: one row per input row, in order, prediction 0 or 1
  model    SM_MODEL_DIR (default /opt/ml/model): model.json as train.py wrote it
veritrail runs it in its own sandboxed process on a test split the trainer never saw; on SageMaker
the image's `serve` answers POST /invocations with predict_csv (Batch Transform).
"""

import csv
import io
import json
import math
import os
import sys


def load_model(model_dir=None):
    model_dir = model_dir or os.environ.get("SM_MODEL_DIR", "/opt/ml/model")
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        model = json.load(f)
    if model.get("type") != "sklearn-logistic-regression":
        raise ValueError("unknown model type %r" % model.get("type"))
    return model


def predict_csv(text, model):
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    header = [h.strip() for h in rows[0]]
    missing = [c for c in model["features"] if c not in header]
    if missing:
        raise ValueError("input lacks feature columns %s" % ", ".join(missing))
    idx = [header.index(c) for c in model["features"]]
    out = ["score,prediction"]
    for r in rows[1:]:
        t = model["intercept"]
        for j, i in enumerate(idx):
            t += model["coef"][j] * ((float(r[i]) - model["mean"][j]) / model["scale"][j])
        s = 1.0 / (1.0 + math.exp(-t))
        out.append("%.6f,%d" % (s, 1 if s >= model["threshold"] else 0))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    try:
        sys.stdout.write(predict_csv(sys.stdin.read(), load_model()))
    except Exception as e:
        sys.stderr.write("predict failed: %s: %s\n" % (type(e).__name__, e))
        sys.exit(2)
