#!/usr/bin/env bash
# The GPU check of the co-located transport, for a machine with a CUDA GPU (CI has none; the
# CPU fallback is what CI tests). Self-contained and short (a few minutes):
#  1. builds tokenlake (its `cuda` feature is on by default; the driver is loaded at run time),
#     or takes the binary in $TOKENLAKE_BIN where there is no Rust toolchain;
#  2. ingests the committed sample (tests/data) into a scratch lake and serves it on loopback;
#  3. streams the Ziya2 recipe through the shared-memory ring into GPU memory, computes every
#     batch's checksum on the device, and requires it to equal the host's checksum of the same
#     batch from the gRPC payload stream;
#  4. the Python client: shared memory into pinned tensors and on to the GPU, checked there
#     against the gRPC stream (skipped where python3 has no torch or grpc);
#  5. `bench stream --device cuda`: the stream into GPU memory in tokens/s and GB/s, next to a
#     plain copy of the same size from page-locked memory, one gRPC stream and memcpy.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tokenlake-target}"

if [ -n "${TOKENLAKE_BIN:-}" ]; then
  tokenlake="$TOKENLAKE_BIN"
else
  cargo build --release --locked -p tokenlake --bin tokenlake
  tokenlake="$CARGO_TARGET_DIR/release/tokenlake"
fi
nvidia-smi -L || echo "nvidia-smi is missing: the device is found through the driver alone" >&2

work="$(mktemp -d)"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

echo "== a lake of the committed sample"
"$tokenlake" ingest "$work/lake" tests/data/sample.jsonl.gz \
  --source sample --source-field source --tokenizer tests/data/tokenizer.json >/dev/null
"$tokenlake" tag "$work/lake" create quickstart >/dev/null

"$tokenlake" serve --open --listen 127.0.0.1:0 --lake "gpu=$work/lake" --shm-dir "$work" \
  2>"$work/serve.log" &
server=$!
for _ in $(seq 200); do grep -q 'listening on' "$work/serve.log" && break; sleep 0.1; done
url="$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -n1)"
recipe=deploy/recipes/ziya2.toml
steps=40

echo "== Rust client: shared memory into GPU memory, checksums on the device"
args=(stream "$recipe" --server "$url" --lake gpu --micro-batch 4 --steps "$steps" --batch-checksums)
"$tokenlake" "${args[@]}" --transport grpc >"$work/host.txt"
"$tokenlake" "${args[@]}" --transport shm --device cuda >"$work/device.txt" 2>"$work/device.log"
cat "$work/device.log"
grep -q 'checksums are computed there' "$work/device.log" \
  || { echo "FAIL: the batches did not go to a GPU" >&2; exit 1; }
if ! cmp -s "$work/host.txt" "$work/device.txt"; then
  echo "FAIL: checksums on the device differ from the host's:" >&2
  diff "$work/host.txt" "$work/device.txt" | head >&2
  exit 1
fi
echo "ok: $(wc -l <"$work/device.txt") batches; every checksum computed on the device equals the host's"

echo "== Python client: shared memory into pinned tensors, then the GPU"
# TOKENLAKE_PYTHONPATH may name a copy of the package whose stubs match that machine's protobuf.
pythonpath="${TOKENLAKE_PYTHONPATH:-client/python}"
if python3 -c 'import torch, grpc, numpy' 2>/dev/null; then
  if [ ! -f "$pythonpath/tokenlake/v1/tokenlake_pb2.py" ]; then
    python3 client/python/generate_stubs.py
  fi
  PYTHONPATH="$pythonpath" python3 tests/python/gpu_check.py "$url" "$recipe" gpu "$steps"
else
  echo "skipped: python3 lacks torch, grpc or numpy"
fi

echo "== bench: one shared-memory stream into GPU memory against a plain pinned copy"
"$tokenlake" bench stream --transport shm --device cuda --docs "${BENCH_DOCS:-100000}" \
  --idle-streams 8 --dir "$work"
