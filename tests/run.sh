#!/usr/bin/env bash
# The test command: unit, property and end-to-end tests, plus the Python checks (pylance interop
# and the Python client's pytest suite, run by the end-to-end tests), which need Python 3 and
# install their packages into .venv when they are missing, the object-storage tests, which
# run against a real S3 server (s3s-fs, installed here when missing), and the corpus-scale
# curation checks, on the shared corpus where its builder is found.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tokenlake-target}"

# pylance must be the release that matches the lance crate, so both read the same format.
PYLANCE_VERSION=14.0.2
# datatrove (with spacy and regex, which its English word splitting needs) is the reference
# the published rule sets are checked against (tests/e2e/rules.rs); PyYAML parses the deployment
# manifests for tests/e2e/deploy.rs.
PYTHON_PACKAGES=("pylance==${PYLANCE_VERSION}" "grpcio-tools>=1.60" "numpy" "pytest" "datatrove" "spacy" "regex" "pyyaml")
if command -v python3 >/dev/null 2>&1; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import lance, grpc_tools, numpy, pytest, datatrove, spacy, regex, yaml" 2>/dev/null; then
    :
  elif [ -x .venv/bin/python ] && [ ! -d .venv/site ]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
  elif [ ! -d .venv/site ] && python3 -m venv .venv 2>/dev/null; then
    .venv/bin/python -m pip install -q --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
  else
    # No venv module (Debian without python3-venv): install beside the tree instead.
    rm -rf .venv
    python3 -m pip install -q --disable-pip-version-check --target .venv/site "${PYTHON_PACKAGES[@]}"
    mkdir -p .venv/bin
    printf '#!/bin/sh\nPYTHONPATH="%s/.venv/site${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$@"\n' "$PWD" > .venv/bin/python
    chmod +x .venv/bin/python
  fi
  export TOKENLAKE_PYTHON="$PWD/.venv/bin/python"
  # The Python client's gRPC stubs, from the same proto the server compiles.
  "$TOKENLAKE_PYTHON" client/python/generate_stubs.py
else
  echo "python3 is missing: the pylance interop check will be skipped" >&2
fi

# A real S3 server for the object-storage tests (tests/e2e/s3.rs), built once per machine
# beside the build directory.
S3S_ROOT="${TOKENLAKE_TOOLS_DIR:-$(dirname "$CARGO_TARGET_DIR")/tokenlake-tools}"
if [ ! -x "$S3S_ROOT/bin/s3s-fs" ]; then
  echo "installing s3s-fs (the S3 server the tests run against) into $S3S_ROOT" >&2
  CARGO_TARGET_DIR="$S3S_ROOT/target" cargo install s3s-fs --version 0.14.1 --features binary \
    --locked --root "$S3S_ROOT" --quiet
  rm -rf "$S3S_ROOT/target"
fi
export TOKENLAKE_S3S_FS="$S3S_ROOT/bin/s3s-fs"

# PyTorch's world, in one virtual environment beside the build directory made once per machine
# (PyTorch is gigabytes): Megatron-Core, which reads `tokenlake export --format megatron` back in
# tests/e2e/export.rs, and the trainers' packages the Python package is tested with
# (torchdata's StatefulDataLoader, transformers, pandas; tests/e2e/python_package.rs).
MEGATRON_VENV="$S3S_ROOT/megatron-venv"
if [ -z "${TOKENLAKE_MEGATRON_PYTHON:-}" ] && command -v python3 >/dev/null 2>&1; then
  if ! "$MEGATRON_VENV/bin/python" -c "import megatron.core.datasets.indexed_dataset" 2>/dev/null; then
    echo "installing megatron-core (and PyTorch) into $MEGATRON_VENV (once)" >&2
    rm -rf "$MEGATRON_VENV"
    if python3 -m venv "$MEGATRON_VENV" 2>/dev/null; then
      "$MEGATRON_VENV/bin/python" -m pip install -q --disable-pip-version-check megatron-core numpy \
        || echo "megatron-core did not install: the Megatron-Core check will be skipped" >&2
    fi
  fi
  if "$MEGATRON_VENV/bin/python" -c "import megatron.core.datasets.indexed_dataset" 2>/dev/null; then
    export TOKENLAKE_MEGATRON_PYTHON="$MEGATRON_VENV/bin/python"
  fi
fi
TORCH_PACKAGES="import torch, torchdata.stateful_dataloader, transformers, pandas, pyarrow, pytest"
if [ -x "$MEGATRON_VENV/bin/python" ] && ! "$MEGATRON_VENV/bin/python" -c "$TORCH_PACKAGES" 2>/dev/null; then
  echo "installing torchdata, transformers and pandas beside PyTorch in $MEGATRON_VENV (once)" >&2
  # torchdata without its dependencies: its pin of torch would replace the PyTorch there
  "$MEGATRON_VENV/bin/python" -m pip install -q --disable-pip-version-check transformers pandas pyarrow \
    pytest requests urllib3 \
    && "$MEGATRON_VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps torchdata \
    || echo "the trainers' packages did not install: the PyTorch checks will be skipped" >&2
fi

# The Python package as a user installs it: the wheel deploy/python/build-wheel.sh builds
# (maturin, with this build directory and the dev profile, so it reuses the workspace's build
# instead of an hour of release build), installed into a fresh virtual environment outside the
# source tree. The package's tests and the client's pytest suite run against it
# (`needs_python_package`); the tests never build it themselves, since a cargo started from a
# test inherits the test's CARGO_* variables, which dependencies' build scripts watch.
PACKAGE_VENV="$(dirname "$CARGO_TARGET_DIR")/tokenlake-package-venv"
PACKAGE_WHEELS="$(dirname "$CARGO_TARGET_DIR")/tokenlake-wheel"
if [ -z "${TOKENLAKE_PACKAGE_PYTHON:-}" ] && command -v python3 >/dev/null 2>&1; then
  rm -rf "$PACKAGE_VENV" "$PACKAGE_WHEELS"
  if python3 -m venv "$PACKAGE_VENV" 2>/dev/null \
    && TOKENLAKE_WHEEL_PROFILE=dev TOKENLAKE_WHEEL_PYTHON="$PACKAGE_VENV/bin/python" \
      bash deploy/python/build-wheel.sh "$PACKAGE_WHEELS" >/dev/null \
    && (cd "$(dirname "$PACKAGE_VENV")" && "$PACKAGE_VENV/bin/python" -m pip install -q \
      --disable-pip-version-check "$PACKAGE_WHEELS"/tokenlake-*.whl pytest pandas "pylance==${PYLANCE_VERSION}"); then
    export TOKENLAKE_PACKAGE_PYTHON="$PACKAGE_VENV/bin/python"
    TOKENLAKE_PACKAGE_WHEEL="$(ls "$PACKAGE_WHEELS"/tokenlake-*.whl)"
    export TOKENLAKE_PACKAGE_WHEEL
    # The same wheel beside PyTorch, replacing the last run's.
    if [ -z "${TOKENLAKE_TORCH_PYTHON:-}" ] && "$MEGATRON_VENV/bin/python" -c "$TORCH_PACKAGES" 2>/dev/null \
      && (cd "$(dirname "$PACKAGE_VENV")" && "$MEGATRON_VENV/bin/python" -m pip install -q \
        --disable-pip-version-check --force-reinstall --no-deps "$TOKENLAKE_PACKAGE_WHEEL" \
        && "$MEGATRON_VENV/bin/python" -m pip install -q --disable-pip-version-check \
          "$TOKENLAKE_PACKAGE_WHEEL"); then
      export TOKENLAKE_TORCH_PYTHON="$MEGATRON_VENV/bin/python"
    fi
  else
    echo "the Python package did not install: its tests will be skipped" >&2
  fi
fi

# The explorer's browser tests (tests/e2e/explorer.rs): Debian's headless Chromium and
# chromedriver (deploy/install-deps.sh installs them), driven through Selenium's WebDriver
# client in .venv.
if [ -n "${TOKENLAKE_PYTHON:-}" ] && [ -z "${TOKENLAKE_CHROMEDRIVER:-}" ] \
  && command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  "$TOKENLAKE_PYTHON" -c "import selenium" 2>/dev/null \
    || "$TOKENLAKE_PYTHON" -m pip install -q --disable-pip-version-check selenium \
    || echo "selenium did not install: the browser tests will be skipped" >&2
  if "$TOKENLAKE_PYTHON" -c "import selenium" 2>/dev/null; then
    TOKENLAKE_CHROMEDRIVER="$(command -v chromedriver)"
    export TOKENLAKE_CHROMEDRIVER
  fi
fi

# The corpus-scale curation checks (de-duplication recall and precision against the builder's
# truth, rule agreement with datatrove) run on the shared corpus: built once per machine beside
# the build directory when its builder is at hand, with datatrove's verdicts on it.
BUILDER="${TOKENLAKE_CORPUS_BUILDER:-../shared/corpus/make_corpus.py}"
CORPUS_DIR="$S3S_ROOT/corpus"
if [ -z "${TOKENLAKE_CORPUS:-}" ] && [ -n "${TOKENLAKE_PYTHON:-}" ]; then
  if [ ! -s "$CORPUS_DIR/corpus.jsonl.gz.datatrove.jsonl" ] && [ -f "$BUILDER" ]; then
    mkdir -p "$CORPUS_DIR"
    echo "building the shared corpus and datatrove's verdicts on it into $CORPUS_DIR (once)" >&2
    if python3 "$BUILDER" --out "$CORPUS_DIR/corpus.jsonl.gz" >/dev/null \
      && "$TOKENLAKE_PYTHON" services/tokenlake-bench/python/datatrove_verdicts.py "$CORPUS_DIR/corpus.jsonl.gz" \
        > "$CORPUS_DIR/verdicts.partial"; then
      mv "$CORPUS_DIR/verdicts.partial" "$CORPUS_DIR/corpus.jsonl.gz.datatrove.jsonl"
    fi
  fi
  if [ -s "$CORPUS_DIR/corpus.jsonl.gz.datatrove.jsonl" ]; then
    export TOKENLAKE_CORPUS="$CORPUS_DIR/corpus.jsonl.gz"
    export TOKENLAKE_DATATROVE_VERDICTS="$CORPUS_DIR/corpus.jsonl.gz.datatrove.jsonl"
  fi
fi

# Tests that need something a machine may lack live in modules named `needs_<what>` and are
# #[ignore]d: they run where it is at hand and are left out, counted as skipped in the summary,
# where it is not. Run alone without it, such a test fails saying what it needs.
have() { [ -n "${1:-}" ]; }
python_ok=""
if have "${TOKENLAKE_PYTHON:-}" \
  && "$TOKENLAKE_PYTHON" -c "import lance, grpc_tools, numpy, pytest, datatrove, spacy, regex, yaml" 2>/dev/null; then
  python_ok=1
fi
openssl_ok=""
command -v openssl >/dev/null 2>&1 && openssl_ok=1
s3s_ok=""
[ -x "${TOKENLAKE_S3S_FS:-}" ] && s3s_ok=1
second_user_ok=""
[ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1 && second_user_ok=1
skipped=()
have "${TOKENLAKE_CORPUS:-}" || skipped+=("needs_corpus|the shared corpus was not built (its builder was not found, or failed)")
have "$python_ok" || skipped+=("needs_python|no Python with the packages above")
have "${TOKENLAKE_MEGATRON_PYTHON:-}" || skipped+=("needs_megatron|megatron-core did not install")
have "${TOKENLAKE_PACKAGE_PYTHON:-}" || skipped+=("needs_python_package|the Python package did not install")
have "${TOKENLAKE_TORCH_PYTHON:-}" || skipped+=("needs_torch|no PyTorch environment with the package (torch, torchdata, transformers)")
have "${TOKENLAKE_CHROMEDRIVER:-}" || skipped+=("needs_chromium|no chromium, chromedriver or selenium")
have "$openssl_ok" || skipped+=("needs_openssl|no openssl on this machine")
have "$s3s_ok" || skipped+=("needs_s3s_fs|s3s-fs did not install")
have "$second_user_ok" || skipped+=("needs_second_user|not root, or no setpriv to become another user")
filter=""
for entry in "${skipped[@]}"; do
  module="${entry%%|*}"
  echo "skipping the ${module} tests: ${entry#*|}" >&2
  filter="${filter:+$filter | }test(/${module}/)"
done

if cargo nextest --version >/dev/null 2>&1; then
  if [ -n "$filter" ]; then
    cargo nextest run --workspace --no-fail-fast --locked --run-ignored all -E "not ($filter)"
  else
    cargo nextest run --workspace --no-fail-fast --locked --run-ignored all
  fi
else
  skip_args=()
  for entry in "${skipped[@]}"; do skip_args+=(--skip "${entry%%|*}"); done
  cargo test --workspace --no-fail-fast --locked -- --include-ignored "${skip_args[@]}"
fi
