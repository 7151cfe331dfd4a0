#!/usr/bin/python3
"""Does transfer learning pay? Image-tag precision and recall on a simulated facility as the
number of expert labels grows, with and without the frozen stage-1 layers.

For each K in --labels: a copy of the catalog gets the truth's image tags of K datasets as
experts' accepted tags (what the tagging view would record), then
  - frozen:  `scisearch vision train --pretrained STAGE1` (stage 2: the head only)
  - scratch: `scisearch vision train` (the whole network, from these K labels alone)
and both models predict the held-out datasets (whole session folders never labelled), scored
against truth.jsonl on the image tags (micro-averaged, confidence >= 0.5).

Usage: bench/vision_curve.py --scisearch BIN --data DATA_DIR --facility FACILITY_DIR
                             --stage1 MODEL --work DIR [--labels 50,200,1000] [--epochs 10]
"""
import argparse
import datetime
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import sys

# Tags the simulator derives from what an image shows (src/simulate/plan.cc: scene features
# and quality), the ones no path or metadata can tell.
IMAGE_TAGS = {
    "atomic resolution", "lattice fringes", "defects", "nanoparticles", "nanowires",
    "nanocubes", "core-shell", "overview", "polycrystalline", "single crystal",
    "out of focus", "saturated", "blank", "noisy", "drift",
}


def load_truth(facility):
    truth = {}
    with open(os.path.join(facility, "truth.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            path = os.path.realpath(os.path.join(facility, d["path"]))
            truth[path] = set(d.get("tags", [])) & IMAGE_TAGS
    return truth


def image_datasets(db_path):
    db = sqlite3.connect(db_path)
    rows = db.execute(
        "SELECT d.id, d.path FROM datasets d JOIN signals s ON s.dataset_id = d.id AND "
        "s.idx = 0 WHERE d.state = 'ok' AND s.mode NOT IN "
        "('spectrum', 'spectrum image')").fetchall()
    db.close()
    return rows


def held_out(path):
    """A fixed 30% of session folders, never labelled."""
    folder = os.path.dirname(path).encode()
    return int(hashlib.sha256(folder).hexdigest(), 16) % 10 < 3


def label_copy(src_db, dst_dir, chosen, truth):
    os.makedirs(dst_dir, exist_ok=True)
    dst_db = os.path.join(dst_dir, "catalog.sqlite")
    if os.path.exists(dst_db):
        os.remove(dst_db)
    src = sqlite3.connect(src_db)
    dst = sqlite3.connect(dst_db)
    src.backup(dst)
    src.close()
    now = datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    labelled = 0
    for dataset_id, path in chosen:
        for tag in sorted(truth.get(path, ())):
            dst.execute(
                "INSERT INTO tags (dataset_id, value, source, confidence, evidence, created_at, "
                "created_by, validated_by, validated_at, state) VALUES "
                "(?, ?, 'expert', 1, 'bench: the simulator''s truth', ?, 'bench', 'bench', ?, "
                "'accepted') ON CONFLICT DO NOTHING", (dataset_id, tag, now, now))
            labelled += 1
    dst.commit()
    dst.close()
    return labelled


def predict(scisearch, model, paths):
    out = {}
    for at in range(0, len(paths), 200):
        run = subprocess.run([scisearch, "vision", "predict", "--model", model, "--json"] +
                             paths[at:at + 200], capture_output=True, text=True)
        for line in run.stdout.splitlines():
            d = json.loads(line)
            out[os.path.realpath(d["path"])] = {
                l["label"] for l in d["labels"] if l["confidence"] >= 0.5}
    return out


def score(predicted, truth, paths):
    tp = fp = fn = 0
    for p in paths:
        got = predicted.get(p, set()) & IMAGE_TAGS
        want = truth.get(p, set())
        tp += len(got & want)
        fp += len(got - want)
        fn += len(want - got)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    return precision, recall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scisearch", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--facility", required=True)
    ap.add_argument("--stage1", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--labels", default="50,200,1000")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--max-test", type=int, default=600)
    args = ap.parse_args()

    truth = load_truth(args.facility)
    datasets = image_datasets(os.path.join(args.data, "catalog.sqlite"))
    pool = [(i, p) for i, p in datasets if not held_out(p) and p in truth]
    test = sorted(p for i, p in datasets if held_out(p) and p in truth)
    random.Random(7).shuffle(test)
    test = sorted(test[:args.max_test])
    random.Random(11).shuffle(pool)
    print(f"{len(pool)} datasets with images to label from, {len(test)} held out "
          f"(image tags on the held-out: {sum(len(truth[p]) for p in test)})", flush=True)
    print("labels  variant  precision  recall  train_s", flush=True)
    for k in [int(x) for x in args.labels.split(",")]:
        if k > len(pool):
            print(f"{k}: only {len(pool)} datasets to label; skipped", flush=True)
            continue
        work = os.path.join(args.work, f"labels{k}")
        label_copy(os.path.join(args.data, "catalog.sqlite"), work, pool[:k], truth)
        for variant in ("frozen", "scratch"):
            model = os.path.join(work, f"{variant}.model")
            cmd = [args.scisearch, "vision", "train", "--data-dir", work, "--model", model,
                   "--epochs", str(args.epochs), "--min-examples", "3"]
            if variant == "frozen":
                cmd += ["--pretrained", args.stage1]
            start = datetime.datetime.now()
            run = subprocess.run(cmd, capture_output=True, text=True)
            seconds = (datetime.datetime.now() - start).total_seconds()
            if run.returncode not in (0, 1):
                print(f"{k:6d}  {variant:7s}  training failed: {run.stderr.strip()[-300:]}",
                      flush=True)
                continue
            precision, recall = score(predict(args.scisearch, model, test), truth, test)
            print(f"{k:6d}  {variant:7s}  {precision:9.3f}  {recall:6.3f}  {seconds:7.0f}",
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
