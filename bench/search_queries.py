#!/usr/bin/python3
"""Writes the query mix of the search benchmark (bench/search_vs_peers.sh) as JSONL.

Each query is made from one dataset of the catalog, picked at random with a fixed seed: what a
scientist remembers of a dataset they once saw (words of its proposal's title and abstract, of
its sample folder, its tags, its instrument, PI, mode or format, roughly when and at what
magnification or voltage). Three classes, in equal numbers:

  free     1-3 words, now and then a two-word phrase        PbSe nanoparticles "grain boundaries"
  fielded  1-2 field filters, with 0-2 words               instrument:"FEI Titan" pi:cwalsh strain
  range    1-2 numeric or date ranges, with 0-2 words       gold mag>500k date:2011-10..2011-12
           and sometimes a field filter

Every line holds the scisearch query string ("text") and the same query in structured form,
from which bench/search_bench.cc builds the SQLite FTS5 and PostgreSQL statements:

  {"id": "q0007", "class": "range", "text": "...",
   "terms": ["gold"], "phrases": [["grain", "boundaries"]],
   "filters": {"instrument": "FEI Titan", "tag": "atomic resolution"},
   "ranges": {"magnification": [500000, null], "acquired": [1317427200, 1325375999]}}

Ranges are inclusive, in stored units (times, kV, seconds since the Unix epoch UTC); null is an
open end. Words are never stop words of PostgreSQL's English configuration (which would drop
them on one side only).

Usage: search_queries.py CATALOG.sqlite OUT.jsonl [--per-class N] [--seed S]
"""

import argparse
import calendar
import json
import math
import random
import re
import sqlite3
import sys
from datetime import datetime

STOP_FILE = "/usr/share/postgresql/15/tsearch_data/english.stop"
# Words every dataset or nearly every one carries: nobody searches for them.
GENERIC = {"facility", "will", "using", "use", "new", "study", "image", "images", "data"}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")


def load_stop_words():
    try:
        with open(STOP_FILE, encoding="utf-8") as f:
            return {line.strip().lower() for line in f if line.strip()}
    except OSError:
        # PostgreSQL's English list, should the server's copy be elsewhere.
        return set("""i me my myself we our ours ourselves you your yours yourself yourselves he
        him his himself she her hers herself it its itself they them their theirs themselves what
        which who whom this that these those am is are was were be been being have has had having
        do does did doing a an the and but if or because as until while of at by for with about
        against between into through during before after above below to from up down in out on
        off over under again further then once here there when where why how all any both each
        few more most other some such no nor not only own same so than too very s t can will just
        don should now""".split())


STOP = load_stop_words()


def words(text):
    """The searchable words of `text`, lower-cased, without stop words and generic words."""
    out = []
    for w in WORD.findall(text or ""):
        lw = w.lower()
        if lw in STOP or lw in GENERIC or len(lw) < 2:
            continue
        out.append(lw)
    return out


def sample_words(path):
    """Words of the folder an acquisition sits in (its sample name), without dates."""
    parts = path.split("/")
    folder = parts[-2] if len(parts) >= 2 else ""
    # "20110113_Pt on C", "07Nov11 srtio3 on sto", "2016-07-26 HT9 as received"
    folder = re.sub(r"^[0-9]{8}[ _-]*|^[0-9]{2}[A-Za-z]{3}[0-9]{2}[ _-]*|^[0-9-]{10}[ _-]*", "",
                    folder)
    return [w for w in words(folder.replace("_", " ").replace("-", " ")) if not w.isdigit()]


def epoch(text):
    return calendar.timegm(datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").timetuple())


def month_start(year, month):
    return calendar.timegm((year, month, 1, 0, 0, 0))


def month_end(year, month):
    last = calendar.monthrange(year, month)[1]
    return calendar.timegm((year, month, last, 23, 59, 59))


def quote(value):
    """A field value as scisearch reads it: bare when one word, else in double quotes."""
    return value if re.fullmatch(r"[A-Za-z0-9.]+", value) else '"' + value + '"'


def mag_text(x):
    """A magnification the way people write it: 500k, 1M, 2.5M, 800x. Below a thousand
    the times sign is written: in "200x..5k" a bare 200 would take the k of the other end."""
    if x >= 1e6:
        return f"{x / 1e6:g}M"
    if x >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}x"


def round_down(x):
    """The largest of 1, 2, 5 x 10^n not above x."""
    e = math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * 10**e <= x:
            return m * 10**e
    return 10**e


def round_up(x):
    e = math.floor(math.log10(x))
    for m in (1, 2, 5, 10):
        if m * 10**e >= x:
            return m * 10**e
    return 10 ** (e + 1)


class Dataset:
    def __init__(self, row, tags):
        (self.id, self.path, self.instrument, self.mode, self.format, self.detector,
         self.magnification, self.beam_energy_kev, self.acquired, self.pi, self.title,
         self.abstract) = row
        self.tags = tags


def fetch(db, dataset_id):
    row = db.execute(
        """SELECT d.id, d.path, d.instrument, d.mode, d.format, d.detector, d.magnification,
                  d.beam_energy_kev, d.acquired, p.pi, p.title, p.abstract
           FROM datasets d LEFT JOIN proposals p ON p.id = d.proposal_id
           WHERE d.id = ? AND d.state = 'ok'""", (dataset_id,)).fetchone()
    if row is None:
        return None
    tags = [t for (t,) in db.execute(
        "SELECT DISTINCT value FROM tags WHERE dataset_id = ? ORDER BY value", (dataset_id,))]
    return Dataset(row, tags)


class Generator:
    def __init__(self, rng):
        self.rng = rng

    def pick_words(self, d, count):
        """`count` distinct words a user might remember of dataset d."""
        pools = [
            (0.35, words(d.title)),
            (0.30, [w for t in d.tags for w in words(t)]),
            (0.25, sample_words(d.path)),
            (0.10, words(d.abstract)),
        ]
        chosen = []
        for _ in range(count * 6):
            if len(chosen) == count:
                break
            r, acc = self.rng.random(), 0.0
            for weight, pool in pools:
                acc += weight
                if r <= acc:
                    break
            if pool:
                w = self.rng.choice(pool)
                if w not in chosen:
                    chosen.append(w)
        return chosen

    def pick_phrase(self, d):
        """Two adjacent words of the title or of a multi-word tag, neither a stop word."""
        candidates = []
        for text in [d.title] + d.tags:
            ws = WORD.findall(text or "")
            for a, b in zip(ws, ws[1:]):
                la, lb = a.lower(), b.lower()
                if all(x not in STOP and x not in GENERIC and len(x) > 1 for x in (la, lb)):
                    candidates.append([la, lb])
        return self.rng.choice(candidates) if candidates else None

    def free(self, d):
        q = {"terms": [], "phrases": [], "filters": {}, "ranges": {}}
        if self.rng.random() < 0.15:
            phrase = self.pick_phrase(d)
            if phrase:
                q["phrases"].append(phrase)
        n = self.rng.choices([1, 2, 3], [0.3, 0.45, 0.25])[0] - len(q["phrases"])
        q["terms"] = [w for w in self.pick_words(d, max(n, 0)) if
                      not any(w in p for p in q["phrases"])]
        if not q["terms"] and not q["phrases"]:
            q["terms"] = self.pick_words(d, 1)
        return q

    def filters(self, d, count):
        options = {"instrument": d.instrument, "pi": d.pi, "mode": d.mode, "format": d.format}
        if d.tags:
            options["tag"] = self.rng.choice(d.tags)
        names = [k for k, v in options.items() if v]
        return {k: options[k] for k in self.rng.sample(names, min(count, len(names)))}

    def fielded(self, d):
        q = {"terms": [], "phrases": [], "filters": {}, "ranges": {}}
        q["filters"] = self.filters(d, self.rng.choices([1, 2], [0.6, 0.4])[0])
        n = self.rng.choices([0, 1, 2], [0.3, 0.5, 0.2])[0]
        q["terms"] = self.pick_words(d, n)
        return q

    def range_of(self, d, name):
        """(scisearch text, stored range) for range `name` around dataset d's value."""
        if name == "mag" and d.magnification:
            m = d.magnification
            if self.rng.random() < 0.5:
                low = round_down(m)
                return f"mag>{mag_text(low)}", [low, None]
            low, high = round_down(m / 3), round_up(m * 3)
            return f"mag:{mag_text(low)}..{mag_text(high)}", [low, high]
        if name == "voltage" and d.beam_energy_kev:
            v = d.beam_energy_kev
            if self.rng.random() < 0.5:
                return f"voltage:{v:g}kV", [v, v]
            low, high = round_down(v / 2), round_up(v * 1.5)
            return f"voltage:{low:g}..{high:g}kV", [low, high]
        if name == "date" and d.acquired:
            year, month = int(d.acquired[:4]), int(d.acquired[5:7])
            r = self.rng.random()
            if r < 0.4:
                return f"date:{year}", [month_start(year, 1), month_end(year, 12)]
            if r < 0.8:
                first = max(1, month - self.rng.randint(0, 2))
                last = min(12, month + self.rng.randint(0, 2))
                span = (f"{year}-{first:02d}" if first == last else
                        f"{year}-{first:02d}..{year}-{last:02d}")
                return f"date:{span}", [month_start(year, first), month_end(year, last)]
            return f"date:..{year}", [None, month_end(year, 12)]
        return None

    def ranged(self, d):
        q = {"terms": [], "phrases": [], "filters": {}, "ranges": {}, "range_text": []}
        names = self.rng.sample(["mag", "voltage", "date"], self.rng.choices([1, 2], [0.7, 0.3])[0])
        stored = {"mag": "magnification", "voltage": "beam_energy_kev", "date": "acquired"}
        for name in names:
            r = self.range_of(d, name)
            if r:
                q["range_text"].append(r[0])
                q["ranges"][stored[name]] = r[1]
        if not q["ranges"]:
            r = self.range_of(d, "date")
            q["range_text"].append(r[0])
            q["ranges"]["acquired"] = r[1]
        if self.rng.random() < 0.3:
            q["filters"] = self.filters(d, 1)
        n = self.rng.choices([0, 1, 2], [0.2, 0.6, 0.2])[0]
        q["terms"] = self.pick_words(d, n)
        return q


def scisearch_text(q):
    parts = list(q["terms"])
    parts += ['"' + " ".join(p) + '"' for p in q["phrases"]]
    parts += [f"{k}:{quote(v)}" for k, v in q["filters"].items()]
    parts += q.get("range_text", [])
    return " ".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("catalog")
    parser.add_argument("out")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20111013)
    args = parser.parse_args()
    if args.per_class < 1:
        sys.exit("search_queries: --per-class must be at least 1")

    db = sqlite3.connect(f"file:{args.catalog}?mode=ro", uri=True)
    low, high = db.execute("SELECT min(id), max(id) FROM datasets WHERE state = 'ok'").fetchone()
    if low is None:
        sys.exit(f"search_queries: {args.catalog}: no dataset in state ok")
    rng = random.Random(args.seed)
    gen = Generator(rng)
    makers = [("free", gen.free), ("fielded", gen.fielded), ("range", gen.ranged)]
    queries = []
    for i in range(args.per_class):
        for name, make in makers:
            d = None
            while d is None:
                d = fetch(db, rng.randint(low, high))
            q = make(d)
            text = scisearch_text(q)
            q.pop("range_text", None)
            queries.append({"id": f"q{len(queries):04d}", "class": name, "text": text,
                            "from_dataset": d.id, **q})
    with open(args.out, "w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    print(f"search_queries: {len(queries)} queries ({args.per_class} per class) -> {args.out}")


if __name__ == "__main__":
    main()
