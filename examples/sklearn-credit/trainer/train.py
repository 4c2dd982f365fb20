"""scikit-learn trainer under the SageMaker training container contract (docs/trainers.md).

Reads SM_* variables when set (veritrail's local trainer) and the fixed /opt/ml layout otherwise:
  SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION   CSV with a header row: feature columns and the label
  SM_INPUT_CONFIG_DIR                       hyperparameters.json (all strings)
  SM_MODEL_DIR                              model.json (the fitted scaler and coefficients)
  SM_OUTPUT_DATA_DIR                        predictions.csv on the validation channel: a self-report
                                            only; the control plane scores the model itself on a
                                            test split it never gives the trainer (predict.py)
  SM_OUTPUT_DIR                             `failure`: the one-line reason of a failed job
Before reading a row it verifies every channel against the recorded digests (veritrail_channels.py).
The model is plain JSON, not a pickle: loading it runs no code.
"""

import csv
import json
import os
import sys

from veritrail_channels import ChannelError, read_hyperparameters, verify_channels

ROOT = os.environ.get("VERITRAIL_OPT_ML", "/opt/ml")
OUTPUT = os.environ.get("SM_OUTPUT_DIR", os.path.join(ROOT, "output"))
MODEL = os.environ.get("SM_MODEL_DIR", os.path.join(ROOT, "model"))
DATA = os.environ.get("SM_OUTPUT_DATA_DIR", os.path.join(OUTPUT, "data"))


def fail(reason):
    try:
        os.makedirs(OUTPUT, exist_ok=True)
        with open(os.path.join(OUTPUT, "failure"), "w", encoding="utf-8") as f:
            f.write(reason + "\n")
    except OSError:
        pass
    sys.stderr.write("training failed: %s\n" % reason)
    sys.exit(2)


def load(path, features, label):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    try:
        idx = [header.index(c) for c in features]
        li = header.index(label)
    except ValueError as e:
        fail("%s: %s" % (path, e))
    x = [[float(r[i]) for i in idx] for r in rows[1:]]
    y = [int(r[li]) for r in rows[1:]]
    return x, y


def main():
    try:
        files = verify_channels(["train", "validation"])
    except ChannelError as e:
        fail(str(e))
    hp = read_hyperparameters()
    label = hp.get("veritrail_label")
    features = [c for c in hp.get("veritrail_features", "").split(",") if c]
    if not label or not features:
        fail("hyperparameters veritrail_label and veritrail_features are required")
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
    except ImportError as e:
        fail("scikit-learn is not installed (%s): install Debian's python3-sklearn" % e)

    x, y = load(files["train"], features, label)
    xv, yv = load(files["validation"], features, label)
    scaler = StandardScaler().fit(np.array(x))
    model = LogisticRegression(C=float(hp.get("C", "1.0")), max_iter=int(hp.get("max_iter", "500")))
    model.fit(scaler.transform(np.array(x)), np.array(y))
    threshold = float(hp.get("threshold", "0.5"))

    os.makedirs(MODEL, exist_ok=True)
    os.makedirs(DATA, exist_ok=True)
    r = lambda v: round(float(v), 8)
    with open(os.path.join(MODEL, "model.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "type": "sklearn-logistic-regression",
                "features": features,
                "label": label,
                "threshold": threshold,
                "mean": [r(v) for v in scaler.mean_],
                "scale": [r(v) for v in scaler.scale_],
                "coef": [r(v) for v in model.coef_[0]],
                "intercept": r(model.intercept_[0]),
            },
            f,
            indent=2,
            sort_keys=True,
        )
        f.write("\n")
    scores = model.predict_proba(scaler.transform(np.array(xv)))[:, 1]
    correct = 0
    with open(os.path.join(DATA, "predictions.csv"), "w", encoding="utf-8") as f:
        f.write("row,score,prediction\n")
        for i, s in enumerate(scores):
            p = 1 if s >= threshold else 0
            correct += p == yv[i]
            f.write("%d,%.6f,%d\n" % (i, s, p))
    print("trained on %d rows; self-reported validation accuracy %.4f" % (len(x), correct / max(len(yv), 1)))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # any failure is reported, never a silent crash
        fail("%s: %s" % (type(e).__name__, e))
