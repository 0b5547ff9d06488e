#!/usr/bin/env bash
# A sharded ingest of a big corpus on a Slurm cluster, as four dependent jobs: a job array of
# ingest shards, the de-duplication keys (`tokenlake dedup prepare`), a job array of candidate
# tasks (one per partition of the lake's de-duplication index) and the commit that publishes
# the version. Each waits for the one before it (afterok); every step is safe to resubmit.
#
#   LAKE=s3://lakes/web INPUTS='s3://raw/cc/*.jsonl.zst' SHARD_SET=cc-2026-11 \
#   TOKENIZER=/shared/tokenizer.json PIPELINE=/shared/curation.toml \
#   WORK=/shared/tokenlake-dedup/web SHARDS=64 PARTITIONS=256 \
#     deploy/slurm/sharded-ingest.sh
#
# WORK must be on a filesystem every node mounts (Lustre, GPFS, NFS): the keys, the sorted runs
# and the edges live there (about 2.5 KB per document of the lake while the update runs).
# PARTITIONS is the index's partition count when it is created (an existing index keeps its
# own: `tokenlake dedup status WORK` says). SBATCH_OPTS is passed to every sbatch (account,
# partition, time); TOKENLAKE names the binary if it is not on PATH.
set -euo pipefail

: "${LAKE:?set LAKE, the lake (a directory or s3://bucket/prefix)}"
: "${INPUTS:?set INPUTS, the input files or patterns (space-separated)}"
: "${TOKENIZER:?set TOKENIZER, the tokenizer.json every node reads}"
: "${PIPELINE:?set PIPELINE, the curation pipeline file every node reads}"
: "${WORK:?set WORK, the de-duplication working directory on a shared filesystem}"
SHARD_SET="${SHARD_SET:-default}"
SOURCE="${SOURCE:-web}"
SHARDS="${SHARDS:-16}"
PARTITIONS="${PARTITIONS:-64}"
TASK_BUDGET_MB="${TASK_BUDGET_MB:-2048}"
TOKENLAKE="${TOKENLAKE:-tokenlake}"
read -r -a extra <<<"${SBATCH_OPTS:-}"

submit() { sbatch --parsable "${extra[@]}" "$@"; }
# Each job runs one command line; its words are quoted here and again for the job's shell.
quoted() { printf '%q ' "$@"; }

read -r -a inputs <<<"$INPUTS"
ingest=$(submit --job-name=tokenlake-ingest --array="0-$((SHARDS - 1))" \
  --cpus-per-task=8 --mem=16G \
  --wrap "$(quoted "$TOKENLAKE" ingest "$LAKE" "${inputs[@]}" --source "$SOURCE" \
    --tokenizer "$TOKENIZER" --pipeline "$PIPELINE" --shard-set "$SHARD_SET") \
    --shard \$SLURM_ARRAY_TASK_ID/$SHARDS")
prepare=$(submit --job-name=tokenlake-dedup-prepare --dependency="afterok:$ingest" \
  --cpus-per-task=2 --mem=32G \
  --wrap "$(quoted "$TOKENLAKE" dedup prepare "$LAKE" --set "$SHARD_SET" --pipeline "$PIPELINE" \
    --dedup-work "$WORK" --dedup-partitions "$PARTITIONS")")
candidates=$(submit --job-name=tokenlake-dedup --dependency="afterok:$prepare" \
  --array="0-$((PARTITIONS - 1))" --cpus-per-task=1 --mem="$((TASK_BUDGET_MB + 1024))M" \
  --wrap "$(quoted "$TOKENLAKE" dedup candidates "$WORK" --budget-mb "$TASK_BUDGET_MB") \
    --partition \$SLURM_ARRAY_TASK_ID/$PARTITIONS")
commit=$(submit --job-name=tokenlake-commit --dependency="afterok:$candidates" \
  --cpus-per-task=2 --mem=32G \
  --wrap "$(quoted "$TOKENLAKE" commit "$LAKE" --set "$SHARD_SET" --pipeline "$PIPELINE" \
    --dedup-work "$WORK" --dedup-partitions "$PARTITIONS")")
echo "submitted: ingest $ingest, dedup prepare $prepare, dedup candidates $candidates, commit $commit"
