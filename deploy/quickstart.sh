#!/usr/bin/env bash
# Quickstart on a fresh machine: installs what is missing, builds tokenlake, ingests the small
# real-text sample under tests/data into ./lake, tags the version, describes it, then plans and
# streams the Ziya2 recipe over it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tokenlake-target}"

bash deploy/install-deps.sh
# The same build as the test command's (tests included), so the two share every artifact.
cargo build --workspace --tests --locked
tokenlake="$CARGO_TARGET_DIR/debug/tokenlake"

# Documents already in the lake are skipped, so running the quickstart again adds nothing.
"$tokenlake" ingest ./lake tests/data/sample.jsonl.gz \
  --source sample --source-field source --tokenizer tests/data/tokenizer.json
"$tokenlake" tag ./lake list | grep -q ' quickstart ' \
  || "$tokenlake" tag ./lake create quickstart
"$tokenlake" versions ./lake
"$tokenlake" describe ./lake --tag quickstart

# Plan the Ziya2 recipe over the tagged version (caches land in ./lake/cache), then stream the
# first two steps of both ranks of a world of two, one checksum line per sample.
"$tokenlake" plan deploy/recipes/ziya2.toml
for rank in 0 1; do
  "$tokenlake" stream deploy/recipes/ziya2.toml --world 2 --rank "$rank" --micro-batch 2 --steps 2 --checksums
done
