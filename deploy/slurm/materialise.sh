#!/usr/bin/env bash
# A token store for a selection larger than one machine's disk, built on a Slurm cluster as two
# dependent jobs: a job array of shard tasks (`tokenlake materialise RECIPE --shard I/N`, each
# publishing the documents of one slice of the lake version's fragments) and the seal
# (`--seal N`) that publishes the store's index and plan once every task has (afterok). Every
# step is safe to resubmit: a shard that published is not rebuilt, and nothing is sealed until
# every shard has published. Training nodes then stream with `--cache-mode window`.
#
#   RECIPE=/shared/recipes/ziya2.toml LAKE=s3://lakes/web SHARDS=64 \
#     deploy/slurm/materialise.sh
#
# Each shard task fills a local cache of its slice (about the selection's tokens / SHARDS on
# disk) under CACHE_DIR, node-local scratch, removed when it has published. TOKEN_STORES puts
# the stores elsewhere than the lake's token-stores/ (e.g. a bucket of their own); CHUNK_MIB
# sizes the chunks (64). SBATCH_OPTS is passed to every sbatch (account, partition, time);
# TOKENLAKE names the binary if it is not on PATH.
set -euo pipefail

: "${RECIPE:?set RECIPE, the recipe whose selection to publish (a path every node reads)}"
SHARDS="${SHARDS:-16}"
CHUNK_MIB="${CHUNK_MIB:-64}"
CACHE_DIR="${CACHE_DIR:-/tmp/tokenlake-materialise}"
TOKENLAKE="${TOKENLAKE:-tokenlake}"
read -r -a extra <<<"${SBATCH_OPTS:-}"

submit() { sbatch --parsable "${extra[@]}" "$@"; }
# Each job runs one command line; its words are quoted here and again for the job's shell.
quoted() { printf '%q ' "$@"; }

common=("$RECIPE" --cache-dir "$CACHE_DIR" --chunk-mib "$CHUNK_MIB")
[ -n "${LAKE:-}" ] && common+=(--lake "$LAKE")
[ -n "${VERSION:-}" ] && common+=(--version "$VERSION")
[ -n "${TOKEN_STORES:-}" ] && common+=(--token-stores "$TOKEN_STORES")

shards=$(submit --job-name=tokenlake-materialise --array="0-$((SHARDS - 1))" \
  --cpus-per-task=4 --mem=16G \
  --wrap "$(quoted "$TOKENLAKE" materialise "${common[@]}") \
    --shard \$SLURM_ARRAY_TASK_ID/$SHARDS")
seal=$(submit --job-name=tokenlake-materialise-seal --dependency="afterok:$shards" \
  --cpus-per-task=4 --mem=64G \
  --wrap "$(quoted "$TOKENLAKE" materialise "${common[@]}" --seal "$SHARDS")")
echo "submitted: shards $shards, seal $seal"
