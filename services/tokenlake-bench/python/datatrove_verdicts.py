"""Runs datatrove's published rule sets (Gopher quality, Gopher repetition, C4 quality, FineWeb
quality, default settings, English) over a JSON-lines corpus and prints one JSON object per
document: its id and whether each rule set keeps it. tokenlake's rule signals are checked
against these verdicts (tests/e2e/rules.rs), and `tokenlake bench curate` times this script as
the reference rate.

usage: datatrove_verdicts.py CORPUS.jsonl[.gz] [--limit N] [--timing]
"""

import argparse
import gzip
import json
import sys
import time

from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--timing", action="store_true", help="print only docs/s on stderr")
    a = ap.parse_args()
    opener = gzip.open if a.corpus.endswith(".gz") else open
    with opener(a.corpus, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    if a.limit is not None:
        docs = docs[: a.limit]
    filters = {
        "gopher_quality": GopherQualityFilter(),
        "gopher_repetition": GopherRepetitionFilter(),
        "c4": C4QualityFilter(),
        "fineweb": FineWebQualityFilter(),
    }
    # Warm the word tokenizer (spaCy loads lazily) outside the timed part.
    filters["gopher_quality"].filter(Document(text="warm up the tokenizer", id="warm"))
    started = time.perf_counter()
    out = []
    for d in docs:
        verdict = {"id": d["id"]}
        for name, f in filters.items():
            # C4 rewrites doc.text; each filter sees the original text.
            r = f.filter(Document(text=d["text"], id=d["id"]))
            verdict[name] = r is True or (isinstance(r, tuple) and r[0])
        out.append(verdict)
    elapsed = time.perf_counter() - started
    if a.timing:
        print(json.dumps({"docs": len(docs), "seconds": elapsed}))
        return
    for v in out:
        sys.stdout.write(json.dumps(v) + "\n")


if __name__ == "__main__":
    main()
