#!/usr/bin/env bash
# Quickstart on a fresh machine: installs what is missing, builds tokenlake, ingests the small
# real-text sample under tests/data into ./lake, tags the version, describes it, trains n-gram
# models and curates it with them, writes an evaluation report (./lake-report/report.html)
# with perplexity and quality tiers, then plans and streams the Ziya2
# recipe over the tagged version, locally, from `tokenlake serve` and through a window over
# the selection published as a token store.
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
"$tokenlake" describe ./lake --tag quickstart

# Perplexity needs an n-gram model per language: train small ones (order 3) on the lake's own
# English and Chinese prose, as one would on a reference corpus, and name them in a pipeline.
models=./lake-report/lm
mkdir -p "$models"
for lang in en zh; do
  if [ ! -s "$models/$lang.arpa" ]; then
    "$tokenlake" query ./lake "SELECT text FROM documents WHERE source = '$lang'" \
      --format json --out "$models/$lang.jsonl"
    "$tokenlake" lm train "$models/$lang.jsonl" --order 3 --out "$models/$lang.arpa"
  fi
done
printf '[perplexity]\nmodels = { en = "en.arpa", zh = "zh.arpa" }\n' > "$models/pipeline.toml"

# Curation labels (language, perplexity and quality tiers, rule signals and flags, duplicates)
# as a new version, unless the latest version has them already; then an evaluation report of a
# sample (Ziya2's Table 1, perplexity by language, quality tiers).
scored="$("$tokenlake" query ./lake "SELECT COUNT(ppl) AS scored FROM documents" --format csv 2>/dev/null \
  | tail -n 1 || true)"
if [ -z "$scored" ] || [ "$scored" = "0" ]; then
  "$tokenlake" curate ./lake --pipeline "$models/pipeline.toml"
fi
"$tokenlake" eval ./lake --out ./lake-report
# The report must show what curation measured: perplexity and tiers per language.
for section in 'perplexity (en)' 'perplexity (zh)' '<th>high</th>'; do
  grep -qF "$section" ./lake-report/report.html \
    || { echo "the evaluation report lacks $section" >&2; exit 1; }
done
"$tokenlake" versions ./lake

# Ad-hoc questions in SQL: what curation kept, per source, against the tagged version.
"$tokenlake" query ./lake "SELECT source, COUNT(*) AS docs, SUM(n_tokens) AS tokens, \
  SUM(CASE WHEN keep_ziya2 AND NOT is_dup THEN n_tokens ELSE 0 END) AS kept_tokens \
  FROM documents WHERE doc_id IN (SELECT doc_id FROM documents_at('quickstart')) \
  GROUP BY source ORDER BY source"
# The recipe's components as Megatron-Core datasets, with each stage's --data-path blend.
"$tokenlake" export ./lake --recipe deploy/recipes/ziya2.toml --format megatron \
  --out ./lake-report/megatron/ziya2

# Plan the Ziya2 recipe over the tagged version (caches land in ./lake/cache), then stream the
# first two steps of both ranks of a world of two, one checksum line per sample.
"$tokenlake" plan deploy/recipes/ziya2.toml
for rank in 0 1; do
  "$tokenlake" stream deploy/recipes/ziya2.toml --world 2 --rank "$rank" --micro-batch 2 --steps 2 --checksums
done

# The same stream from the service: serve the lake on a free loopback port without
# authentication, stream rank 0 through gRPC and check it against the local stream.
log="$(mktemp)"
"$tokenlake" serve --open --listen 127.0.0.1:0 --lake quickstart=./lake 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q 'listening on' "$log" && break; sleep 0.1; done
url="$(grep -o 'http://[0-9.:]*' "$log" | head -n1)"
stream_args=(--world 2 --rank 0 --micro-batch 2 --steps 2 --checksums)
remote="$("$tokenlake" stream deploy/recipes/ziya2.toml --server "$url" --lake quickstart "${stream_args[@]}")"
local="$("$tokenlake" stream deploy/recipes/ziya2.toml "${stream_args[@]}" 2>/dev/null)"
if [ "$remote" != "$local" ]; then
  echo "the stream from $url differs from the local stream" >&2
  exit 1
fi
echo "streamed from $url: the same samples as the local stream"

# Publish the selection once as a token store (./lake/token-stores), as for training nodes whose
# disks cannot hold it, and stream it through a 64 KiB window: the same samples again.
"$tokenlake" materialise deploy/recipes/ziya2.toml --chunk-mib 1
node_cache="$(mktemp -d)"
windowed="$("$tokenlake" stream deploy/recipes/ziya2.toml "${stream_args[@]}" \
  --cache-mode window --window-max-mib 0.0625 --cache-dir "$node_cache" 2>/dev/null)"
rm -rf "$node_cache"
if [ "$windowed" != "$local" ]; then
  echo "the stream through the window differs from the local stream" >&2
  exit 1
fi
echo "streamed through a 64 KiB window over the token store: the same samples as the local stream"
