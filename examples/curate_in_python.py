"""A data engineer's session: look at the lake, score documents in Python, import the scores as
a label column, and plan a recipe that selects by them.

    python examples/curate_in_python.py [--lake ./lake]

The score here is a toy heuristic (the share of letters in a document's text) so the example
needs nothing but the lake; a real one would be a classifier's output, or datatrove / Dolma
attributes, as a pandas frame or pyarrow table with `doc_id`.
"""

import argparse
import sys

import pandas as pd

import tokenlake


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lake", default="./lake")
    p.add_argument("--column", default="letters_share", help="the label column to add")
    args = p.parse_args()

    lake = tokenlake.Lake(args.lake)
    latest = lake.versions()[-1]
    print(f"{args.lake}: version {latest['version']}, {latest['rows']} documents, tags {lake.tags}")
    print(lake.query("SELECT source, count(*) AS docs, sum(n_tokens) AS tokens "
                     "FROM documents GROUP BY source ORDER BY tokens DESC").to_pandas())
    print(lake.sample("source = 'web'", n=2, seed=1, columns=["doc_id", "url"]).to_pandas())

    # Score every document in Python: here, the share of letters in its text.
    docs = lake.query("SELECT doc_id, text FROM documents", limit=10_000_000).to_pandas()
    scores = pd.DataFrame({
        "doc_id": docs.doc_id,
        args.column: docs.text.map(lambda t: sum(c.isalpha() for c in t) / max(len(t), 1)),
    })
    if args.column in lake.query("SELECT * FROM documents LIMIT 1").column_names:
        print(f"{args.column} is already a label of the lake: planning with it as it is")
    else:
        report = lake.label_import(scores)
        print(f"imported {args.column} for {report['labelled_docs']} documents: version {report['version']}")

    # A recipe over the new label: prose with mostly letters, at the version just made.
    version = lake.versions()[-1]["version"]
    recipe = f"""
lake = "{args.lake}"
version = {version}
seq_len = 256
seed = 1
eos_token = 2
pad_token = 0
[components.clean]
filter = "source IN ('en', 'zh') AND {args.column} > 0.6"
packing = "concat"
[[stages]]
name = "clean-prose"
tokens = 100000
weights = {{ clean = 1.0 }}
"""
    summary = lake.plan(recipe)
    [component] = summary["components"]
    print(f"plan {summary['plan_id']}: {component['docs']} documents, {component['tokens']} tokens, "
          f"{component['epochs']:.2f} epochs of them in {summary['samples']} samples")
    batch = next(tokenlake.Dataset(lake=args.lake, recipe=recipe, micro_batch=2).batches())
    print(f"first batch: samples {batch.indices} of {batch.components}")
    return 0 if component["docs"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
