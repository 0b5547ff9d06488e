#!/usr/bin/env python3
"""Opens a tokenlake lake with pylance and prints what it holds, as JSON.

Usage: check_lake.py LAKE [VERSION_OR_TAG]

Prints rows, tokens, the token type and the digest the Rust end-to-end tests compute: SHA-256
over, for each document in doc_id order, doc_id (u64 LE), token count (u64 LE) and the tokens
(u16 LE). Exits 2 with a message when pylance is missing.
"""
import hashlib
import json
import struct
import sys

try:
    import lance
except ImportError:
    sys.exit("pylance is not installed: pip install pylance==14.0.2 (tests/run.sh does it)")


def main():
    lake = sys.argv[1]
    version = sys.argv[2] if len(sys.argv) > 2 else "latest"
    uri = lake.rstrip("/") + "/documents.lance"
    ds = lance.dataset(uri) if version == "latest" else lance.dataset(uri, version=version)
    table = ds.to_table(columns=["doc_id", "tokens", "n_tokens"])
    ids = table.column("doc_id").to_pylist()
    tokens = table.column("tokens").to_pylist()
    n_tokens = table.column("n_tokens").to_pylist()
    for i, (t, n) in enumerate(zip(tokens, n_tokens)):
        if len(t) != n:
            sys.exit(f"row {i}: n_tokens {n} but {len(t)} tokens")
    digest = hashlib.sha256()
    for i in sorted(range(len(ids)), key=lambda i: ids[i]):
        t = tokens[i]
        digest.update(struct.pack("<QQ", ids[i], len(t)))
        digest.update(struct.pack(f"<{len(t)}H", *t))
    print(json.dumps({
        "rows": len(ids),
        "tokens": sum(len(t) for t in tokens),
        "digest": digest.hexdigest(),
        "token_type": str(table.schema.field("tokens").type.value_type),
        "version": ds.version,
    }))


if __name__ == "__main__":
    main()
