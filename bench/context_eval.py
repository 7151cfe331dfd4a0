#!/usr/bin/env python3
"""Scores scisearch's linking and context tags against a simulated facility's truth.jsonl.

usage: context_eval.py CATALOG.sqlite FACILITY_ROOT [--thresholds 0.5,0.7,0.9]

For every file of truth.jsonl that the catalog holds (state ok):
  - session / proposal: the dataset's session_id / proposal_id equals the truth's;
  - publications: the dataset's publication links equal the truth's set of DOIs;
  - linked correctly: all three right.
Tags: the dataset's non-rejected tags with confidence >= threshold against the truth's
tags, both normalised (lowercase, non-alphanumerics to spaces); micro-averaged precision
and recall over all truth tags, and recall over the tags context can tell (without the
image-only ones: how an image looks and what it shows, which issue 7's vision stage tags).
"""
import json
import os
import re
import sqlite3
import sys
from collections import Counter, defaultdict

# Tags that only the pixels can tell (issue 7's vision stage), reported apart: how an
# image looks, and what it shows of the sample (particles or the lattice, one crystal
# or many), which differs from file to file of the same sample and settings.
IMAGE_ONLY = {"out of focus", "saturated", "blank", "very noisy", "drifted", "grains",
              "nanoparticles", "nanowires", "nanocubes", "core shell", "atomic resolution",
              "lattice fringes", "single crystal", "polycrystalline", "defects"}


# British and American spellings of the same element are the same tag.
SPELLINGS = {"aluminum": "aluminium", "cesium": "caesium", "sulphur": "sulfur"}


def norm(tag):
    words = re.sub(r"[^0-9a-z]+", " ", tag.lower()).split()
    return " ".join(SPELLINGS.get(w, w) for w in words)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    thresholds = [0.3, 0.5, 0.7, 0.9]
    if "--thresholds" in sys.argv:
        thresholds = [float(x) for x in sys.argv[sys.argv.index("--thresholds") + 1].split(",")]
    db = sqlite3.connect(args[0])
    root = os.path.realpath(args[1])
    rows = {}
    for did, path, session, proposal in db.execute(
            "SELECT id, path, session_id, proposal_id FROM datasets WHERE state = 'ok'"):
        rows[path] = (did, session or "", proposal or "")
    pubs = defaultdict(set)
    for did, target in db.execute("SELECT dataset_id, target_id FROM dataset_links WHERE kind = 'publication'"):
        pubs[did].add(target)
    tags = defaultdict(list)
    for did, value, conf, state in db.execute("SELECT dataset_id, value, confidence, state FROM tags"):
        if state != "rejected":
            tags[did].append((norm(value), conf or 0.0))

    n = missing = ok_session = ok_proposal = ok_pubs = ok_all = 0
    truth_tags = []
    wrong_sessions = Counter()
    for line in open(os.path.join(root, "truth.jsonl")):
        t = json.loads(line)
        path = os.path.join(root, t["path"])
        if path not in rows:
            missing += 1
            continue
        n += 1
        did, session, proposal = rows[path]
        s = session == t["session"]
        p = proposal == t["proposal"]
        b = pubs[did] == set(t["publications"])
        ok_session += s
        ok_proposal += p
        ok_pubs += b
        ok_all += s and p and b
        if not s:
            wrong_sessions["none" if not session else "other"] += 1
        truth_tags.append((did, {norm(x) for x in t["tags"]}))
    if n == 0:
        sys.exit("context_eval: no file of truth.jsonl is in the catalog")
    pct = lambda k: f"{100.0 * k / n:.1f}%"
    print(f"files: {n} in the catalog ({missing} of truth.jsonl missing)")
    print(f"linked to the right session: {pct(ok_session)} (wrong: {dict(wrong_sessions)}), "
          f"proposal: {pct(ok_proposal)}, publications: {pct(ok_pubs)}; all three: {pct(ok_all)}")
    for th in thresholds:
        tp = fp = fn = fn_ctx = 0
        missed = Counter()
        spurious = Counter()
        for did, gold in truth_tags:
            pred = {v for v, c in tags[did] if c >= th}
            tp += len(pred & gold)
            fp += len(pred - gold)
            fn += len(gold - pred)
            fn_ctx += len((gold - pred) - IMAGE_ONLY)
            missed.update(gold - pred)
            spurious.update(pred - gold)
        gold_ctx = tp + fn_ctx
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        rec_ctx = tp / gold_ctx if gold_ctx else 0.0
        print(f"tags at confidence >= {th:.2f}: precision {prec:.3f}, recall {rec:.3f} "
              f"(without image-only tags {rec_ctx:.3f}); {tp} right, {fp} wrong, {fn} missed")
        if "--verbose" in sys.argv:
            print("   most missed:", missed.most_common(12))
            print("   most spurious:", spurious.most_common(12))


if __name__ == "__main__":
    main()
