#!/usr/bin/env bash
# Quickstart on a fresh machine: installs what is missing, builds tokenlake, ingests the small
# real-text sample under tests/data into ./lake, tags the version and describes it.
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
