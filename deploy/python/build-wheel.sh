#!/usr/bin/env bash
# Builds the tokenlake Python wheel (client/python: the client, its gRPC stubs, and the native
# module that carries the `tokenlake` command) into OUT_DIR (default: dist/).
#
#   deploy/python/build-wheel.sh [OUT_DIR]
#
# TOKENLAKE_WHEEL_PROFILE=release (the default) builds an optimised module, about an hour on
# two cores from nothing; =dev reuses a workspace debug build (seconds when the workspace is
# built). TOKENLAKE_WHEEL_PYTHON is the interpreter that builds it (default python3, with pip).
# The wheel is abi3: CPython 3.9 and later on this platform. (The names are long on purpose:
# build scripts of dependencies watch short ones such as PROFILE, and a change rebuilds them.)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
out="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tokenlake-target}"
profile="${TOKENLAKE_WHEEL_PROFILE:-release}"
case "$profile" in
  release) export MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:-}" ;;
  dev) export MATURIN_PEP517_ARGS="--profile dev ${MATURIN_PEP517_ARGS:-}" ;;
  *) echo "TOKENLAKE_WHEEL_PROFILE must be release or dev, not $profile" >&2; exit 2 ;;
esac
"${TOKENLAKE_WHEEL_PYTHON:-python3}" -m pip wheel --no-deps --disable-pip-version-check -q -w "$out" "$repo/client/python"
ls "$out"/tokenlake-*.whl
